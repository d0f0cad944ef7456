import { Button, Code, CopyButton, Group, Stack, Tabs, Text } from "@mantine/core";
import type { CreatedKey } from "../api/types.ts";

/** What a snippet's verify call asks: the new key, and one of its permissions so the answer means it. */
function verifyBody(k: CreatedKey): Record<string, unknown> {
  const first = k.permissions[0];
  // A key with an allowlist is refused without the caller's address; the list's first address stands in.
  const ip = k.allowed_ips[0]?.replace(/\/\d+$/, "");
  return {
    key: k.key,
    ...(k.secret ? { secret: k.secret } : {}),
    ...(first ? { permissions: [first] } : {}),
    ...(ip ? { ip } : {}),
    environment: k.environment,
  };
}

/**
 * Ready-to-run calls for a key just created: the gateway's `POST /v1/verify` with this key, as curl and
 * as Node, against this server (the address the console was opened at is the server's). The verify key
 * is the gateway's own, which the console never holds: it is read from LATCHKEY_VERIFY_KEY.
 */
export function snippets(k: CreatedKey, origin: string): { curl: string; node: string } {
  const body = JSON.stringify(verifyBody(k));
  const url = `${origin}/v1/verify`;
  const curl = [
    `curl -s ${url} \\`,
    `  -H "X-API-Key: $LATCHKEY_VERIFY_KEY" -H 'Content-Type: application/json' \\`,
    `  -d '${body}'`,
  ].join("\n");
  const node = [
    `const res = await fetch(${JSON.stringify(url)}, {`,
    `  method: "POST",`,
    `  headers: { "x-api-key": process.env.LATCHKEY_VERIFY_KEY, "content-type": "application/json" },`,
    `  body: JSON.stringify(${JSON.stringify(verifyBody(k), null, 2).replaceAll("\n", "\n  ")}),`,
    `});`,
    `console.log((await res.json()).data);`,
  ].join("\n");
  return { curl, node };
}

function Snippet({ label, text }: { label: string; text: string }) {
  return (
    <Stack gap={4}>
      <Code block className="wrapped-code" data-testid={`snippet-${label.toLowerCase()}`}>
        {text}
      </Code>
      <Group justify="end">
        <CopyButton value={text}>
          {({ copied, copy }) => (
            <Button size="compact-sm" variant={copied ? "filled" : "light"} onClick={copy}>
              {copied ? "Copied" : `Copy the ${label} snippet`}
            </Button>
          )}
        </CopyButton>
      </Group>
    </Stack>
  );
}

export function KeySnippets({ created }: { created: CreatedKey }) {
  const s = snippets(created, window.location.origin);
  return (
    <Stack gap="xs" data-testid="key-snippets">
      <Text size="sm" fw={600}>
        Try it: verify this key as your gateway will
      </Text>
      <Text size="xs" c="dimmed">
        Set LATCHKEY_VERIFY_KEY to your gateway's verify key (one with keys:verify) first. The snippet holds
        the new key: treat it as the key itself.
      </Text>
      <Tabs defaultValue="curl" keepMounted={false}>
        <Tabs.List>
          <Tabs.Tab value="curl">curl</Tabs.Tab>
          <Tabs.Tab value="node">Node</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="curl" pt="xs">
          <Snippet label="curl" text={s.curl} />
        </Tabs.Panel>
        <Tabs.Panel value="node" pt="xs">
          <Snippet label="Node" text={s.node} />
        </Tabs.Panel>
      </Tabs>
    </Stack>
  );
}
