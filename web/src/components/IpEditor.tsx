import { ActionIcon, Badge, Button, Group, Stack, Text, TextInput } from "@mantine/core";
import { useState } from "react";
import { formatIpRule, MAX_ALLOWLIST_ENTRIES, parseIpRule } from "../../../src/core/ip.ts";

/** Why an entry is refused, in the words shown under the input; null when it is a valid rule. */
export function ipProblem(text: string, existing: readonly string[]): string | null {
  const t = text.trim();
  if (t === "") return null;
  const rule = parseIpRule(t);
  if (!rule) {
    if (t.includes("/"))
      return `"${t}" is not a valid CIDR range (an address, a slash, and a prefix length).`;
    return `"${t}" is not a valid IPv4 or IPv6 address.`;
  }
  const canonical = formatIpRule(rule);
  if (existing.includes(canonical)) return `${canonical} is already in the list.`;
  if (existing.length >= MAX_ALLOWLIST_ENTRIES) return `At most ${MAX_ALLOWLIST_ENTRIES} entries.`;
  return null;
}

/**
 * Single addresses and CIDR ranges, IPv4 and IPv6, checked as they are typed with the same parser the
 * server uses, and kept in the server's canonical form.
 */
export function IpEditor({
  value,
  onChange,
  label = "Allowed IPs",
  error,
  disabled,
}: {
  value: string[];
  onChange: (v: string[]) => void;
  label?: string;
  error?: string | undefined;
  disabled?: boolean;
}) {
  const [draft, setDraft] = useState("");
  const problem = ipProblem(draft, value);
  const add = () => {
    const t = draft.trim();
    if (t === "" || problem) return;
    const rule = parseIpRule(t);
    if (!rule) return;
    onChange([...value, formatIpRule(rule)]);
    setDraft("");
  };
  return (
    <Stack gap="xs">
      {/* The Add button sits inside the input, so it stays level with it however the description wraps. */}
      <TextInput
        label={label}
        description="An address (203.0.113.7, 2001:db8::1) or a range (203.0.113.0/24). Empty list: any address."
        placeholder="203.0.113.0/24"
        value={draft}
        onChange={(e) => setDraft(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter") {
            e.preventDefault();
            add();
          }
        }}
        error={problem ?? error}
        disabled={disabled}
        data-testid="ip-input"
        autoComplete="off"
        rightSectionWidth={72}
        rightSectionPointerEvents="all"
        rightSection={
          <Button
            size="compact-sm"
            variant="light"
            onClick={add}
            disabled={disabled || draft.trim() === "" || problem !== null}
          >
            Add
          </Button>
        }
      />
      {value.length === 0 ? (
        <Text size="sm" c="dimmed">
          No restriction: requests from any address are accepted.
        </Text>
      ) : (
        <Group gap="xs" data-testid="ip-list">
          {value.map((entry) => (
            <Badge
              key={entry}
              variant="outline"
              size="lg"
              tt="none"
              rightSection={
                disabled ? undefined : (
                  <ActionIcon
                    size="xs"
                    variant="transparent"
                    aria-label={`Remove ${entry}`}
                    onClick={() => onChange(value.filter((v) => v !== entry))}
                  >
                    ×
                  </ActionIcon>
                )
              }
            >
              <span className="mono">{entry}</span>
            </Badge>
          ))}
        </Group>
      )}
    </Stack>
  );
}
