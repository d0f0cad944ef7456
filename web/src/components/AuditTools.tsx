import { Alert, Button, Group, Stack } from "@mantine/core";
import { useState } from "react";
import { api } from "../api/client.ts";
import { formatDate } from "../lib/format.ts";
import { FormError } from "./errors.tsx";

type Check = Awaited<ReturnType<typeof api.verifyAudit>>;

/**
 * The audit page's two tools: a download of the trail (NDJSON, the filters applied, oldest first) and a
 * check of the company's hash chain, which finds an event edited or deleted in the database.
 */
export function AuditTools({
  filters,
  env,
}: {
  filters: { actor?: string; action?: string; since?: string; until?: string };
  env: "live" | "test";
}) {
  const [exporting, setExporting] = useState(false);
  const [checking, setChecking] = useState(false);
  const [check, setCheck] = useState<(Check & { at: string }) | null>(null);
  const [error, setError] = useState<unknown>(null);

  const download = async () => {
    setExporting(true);
    setError(null);
    try {
      const blob = await api.exportAudit(filters);
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = `audit-${new Date().toISOString().slice(0, 10)}.ndjson`;
      document.body.append(a);
      a.click();
      a.remove();
      // The click has handed the file to the browser; the URL can go once it has read it.
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setError(err);
    } finally {
      setExporting(false);
    }
  };
  const verify = async () => {
    setChecking(true);
    setError(null);
    try {
      setCheck({ ...(await api.verifyAudit()), at: new Date().toISOString() });
    } catch (err) {
      setError(err);
    } finally {
      setChecking(false);
    }
  };

  return (
    <Stack gap="xs" align="end" maw="100%">
      <Group gap="xs">
        <Button variant="default" onClick={() => void download()} loading={exporting}>
          Export (NDJSON)
        </Button>
        <Button
          variant="default"
          onClick={() => void verify()}
          loading={checking}
          disabled={env === "test"}
          title={env === "test" ? "The chain spans live and test: switch to Live to check it." : undefined}
        >
          Verify chain
        </Button>
      </Group>
      <FormError error={error} />
      {check ? (
        <Alert
          data-testid="audit-verify-result"
          role="status"
          color={check.valid ? "teal" : "red"}
          variant="light"
          title={check.valid ? "Chain intact" : "Chain broken"}
          withCloseButton
          closeButtonLabel="Dismiss the check's result"
          onClose={() => setCheck(null)}
        >
          {check.valid
            ? `All ${check.events_checked} events check out: none was edited or deleted (checked ${formatDate(check.at)}).`
            : `An event was edited or deleted: the chain breaks at ${check.first_broken_event_id ?? "an unknown event"}, after ${check.events_checked} events.`}
        </Alert>
      ) : null}
    </Stack>
  );
}
