import { Anchor, Text } from "@mantine/core";
import type { AuditEvent } from "../api/types.ts";
import { useRouter } from "../lib/router.tsx";

type Target = NonNullable<AuditEvent["target"]>;

/**
 * Where a target's own page is: an API user's, a key's on its API user's page (opened at the key), a
 * person's on the people page, a webhook's on the webhooks page. Null where there is none.
 */
export function targetHref(t: Target): string | null {
  switch (t.type) {
    case "credential":
      return `/api-users/${encodeURIComponent(t.id)}`;
    case "key":
      return t.credential_id ? `/api-users/${encodeURIComponent(t.credential_id)}#key-${t.id}` : null;
    case "user":
      return "/settings/access/people";
    case "webhook":
      return "/webhooks";
    default:
      return null;
  }
}

const TYPE_WORD: Record<string, string> = {
  credential: "API user",
  key: "API key",
  user: "Person",
  webhook: "Webhook",
  company: "Company",
  expiry_policy: "Expiry policy",
  leak_policy: "Leak policy",
};

/** An event's target by name, linked to its page; its id beneath, for searching. */
export function AuditTarget({ target, onOpen }: { target: AuditEvent["target"]; onOpen?: () => void }) {
  const { navigate } = useRouter();
  if (!target) return <Text size="sm">—</Text>;
  const href = targetHref(target);
  // A target that is gone (or of a world not shown) has no name: its kind and id are what is known.
  const name = target.label ?? `${TYPE_WORD[target.type] ?? target.type} ${target.id}`;
  return (
    <div style={{ minWidth: 0 }} data-testid="audit-target">
      {href && target.label ? (
        <Anchor
          href={href}
          size="sm"
          className="wrap-token"
          onClick={(e) => {
            if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
            e.preventDefault();
            onOpen?.();
            navigate(href);
          }}
        >
          {name}
        </Anchor>
      ) : (
        <Text size="sm" className="wrap-token">
          {name}
        </Text>
      )}
      <Text size="xs" c="dimmed" className="mono wrap-token">
        {TYPE_WORD[target.type] ?? target.type} · {target.id}
      </Text>
    </div>
  );
}
