import { Button, Group, Modal, Select, Stack, Switch, Text, Textarea, TextInput } from "@mantine/core";
import { useEffect, useState } from "react";
import { checkMeta, EXTERNAL_ID_PATTERN, MAX_CREDITS } from "../../../src/core/credits.ts";
import { api } from "../api/client.ts";
import type { KeyView } from "../api/types.ts";
import { errorFor, FormError } from "./errors.tsx";

/**
 * A key's credits (uses left, and a refill that sets them each UTC day or month), its external id and
 * its meta JSON, as a form edits them: text, checked here with the server's own rules (src/core) before
 * anything is sent.
 */
export interface CreditsValue {
  /** Empty: unlimited. */
  remaining: string;
  refill: boolean;
  refillAmount: string;
  interval: "day" | "month";
  externalId: string;
  /** JSON text; empty: none. */
  meta: string;
}

export const NO_CREDITS: CreditsValue = {
  remaining: "",
  refill: false,
  refillAmount: "",
  interval: "month",
  externalId: "",
  meta: "",
};

export function creditsOf(k: KeyView): CreditsValue {
  return {
    remaining: k.remaining === null ? "" : String(k.remaining),
    refill: k.refill !== null,
    refillAmount: k.refill ? String(k.refill.amount) : "",
    interval: k.refill?.interval ?? "month",
    externalId: k.external_id ?? "",
    meta: k.meta === null ? "" : JSON.stringify(k.meta, null, 2),
  };
}

const EXTERNAL_ID = new RegExp(EXTERNAL_ID_PATTERN);
const whole = (text: string, min: number) => {
  const n = Number(text);
  return /^\d+$/.test(text.trim()) && n >= min && n <= MAX_CREDITS ? n : null;
};

/** What is wrong, by the field the server would name. */
export function creditsProblems(v: CreditsValue): Record<string, string> {
  const problems: Record<string, string> = {};
  if (v.remaining.trim() !== "" && whole(v.remaining, 0) === null)
    problems.remaining = `A whole number from 0 to ${MAX_CREDITS.toLocaleString("en")}, or empty for unlimited.`;
  if (v.refill && whole(v.refillAmount, 1) === null)
    problems.refill = `A whole number from 1 to ${MAX_CREDITS.toLocaleString("en")}.`;
  if (v.externalId !== "" && !EXTERNAL_ID.test(v.externalId))
    problems.external_id = "Up to 128 visible ASCII characters, no spaces.";
  if (v.meta.trim() !== "") {
    let parsed: unknown;
    try {
      parsed = JSON.parse(v.meta);
    } catch {
      problems.meta = "Not valid JSON.";
    }
    if (problems.meta === undefined) {
      const checked = checkMeta(parsed);
      if (!checked.ok) problems.meta = checked.reason;
    }
  }
  return problems;
}

/** The fields of a PATCH: what is cleared is null (unlimited, no refill, none). */
export function creditsPatch(v: CreditsValue) {
  return {
    remaining: v.remaining.trim() === "" ? null : Number(v.remaining),
    refill: v.refill ? { amount: Number(v.refillAmount), interval: v.interval } : null,
    meta: v.meta.trim() === "" ? null : (JSON.parse(v.meta) as Record<string, unknown>),
    external_id: v.externalId === "" ? null : v.externalId,
  };
}

/** The fields of a create: only what is set. */
export function creditsBody(v: CreditsValue) {
  const { remaining, refill, meta, external_id: externalId } = creditsPatch(v);
  return {
    ...(remaining !== null ? { remaining } : {}),
    ...(refill !== null ? { refill } : {}),
    ...(meta !== null ? { meta } : {}),
    ...(externalId !== null ? { external_id: externalId } : {}),
  };
}

export function CreditsFields({
  value,
  onChange,
  error,
}: {
  value: CreditsValue;
  onChange: (v: CreditsValue) => void;
  error: unknown;
}) {
  const problems = creditsProblems(value);
  const set = (patch: Partial<CreditsValue>) => onChange({ ...value, ...patch });
  return (
    <Stack gap="xs">
      <TextInput
        label="Credits (optional)"
        description="Uses left: each allowed verification spends one (or the cost it asks for). Empty: unlimited."
        inputMode="numeric"
        value={value.remaining}
        onChange={(e) => set({ remaining: e.currentTarget.value })}
        error={problems.remaining ?? errorFor(error, "remaining")}
      />
      <Switch
        label="Refill credits each day or month"
        checked={value.refill}
        onChange={(e) => set({ refill: e.currentTarget.checked })}
      />
      {value.refill ? (
        <Group grow align="start">
          <TextInput
            label="Refill to"
            description="The balance is set to this (not added to)"
            inputMode="numeric"
            value={value.refillAmount}
            onChange={(e) => set({ refillAmount: e.currentTarget.value })}
            error={problems.refill ?? errorFor(error, "refill")}
          />
          <Select
            label="At the start of each"
            description="UTC"
            data={[
              { value: "day", label: "day" },
              { value: "month", label: "month" },
            ]}
            value={value.interval}
            onChange={(v) => set({ interval: v === "day" ? "day" : "month" })}
            allowDeselect={false}
          />
        </Group>
      ) : null}
      <TextInput
        label="External id (optional)"
        description="Your own id for the key's owner; lists can be filtered by it, and verification returns it."
        maxLength={128}
        value={value.externalId}
        onChange={(e) => set({ externalId: e.currentTarget.value })}
        error={problems.external_id ?? errorFor(error, "external_id")}
      />
      <Textarea
        label="Meta (optional JSON object)"
        description="Returned by every verification: at most 16 keys, 3 levels deep and 1 KiB."
        classNames={{ input: "mono" }}
        autosize
        minRows={2}
        maxRows={10}
        placeholder='{"plan": "pro"}'
        value={value.meta}
        onChange={(e) => set({ meta: e.currentTarget.value })}
        error={problems.meta ?? errorFor(error, "meta")}
      />
    </Stack>
  );
}

/** "12 left, set to 100 each month" (or "unlimited"). */
export function creditsText(k: KeyView): string | null {
  if (k.remaining === null) return null;
  const left = `${k.remaining.toLocaleString("en")} left`;
  return k.refill
    ? `${left}, set to ${k.refill.amount.toLocaleString("en")} each ${k.refill.interval}`
    : left;
}

/** A key row's credits and external id, when it has them. */
export function CreditsSummary({ k }: { k: KeyView }) {
  const credits = creditsText(k);
  if (credits === null && k.external_id === null) return null;
  return (
    <Text size="xs" c="dimmed" data-testid="key-credits">
      {credits !== null ? `Credits: ${credits}` : null}
      {credits !== null && k.external_id !== null ? " · " : null}
      {k.external_id !== null ? (
        <>
          External id: <span className="mono">{k.external_id}</span>
        </>
      ) : null}
    </Text>
  );
}

/** Changes a key's credits, refill, external id and meta (no 2FA: the server asks none for these). */
export function CreditsDialog({
  keyView,
  onClose,
  onDone,
}: {
  keyView: KeyView | null;
  onClose: () => void;
  onDone: () => void;
}) {
  const [value, setValue] = useState<CreditsValue>(NO_CREDITS);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    setValue(keyView ? creditsOf(keyView) : NO_CREDITS);
    setError(null);
  }, [keyView]);
  const invalid = Object.keys(creditsProblems(value)).length > 0;
  return (
    <Modal
      opened={keyView !== null}
      onClose={onClose}
      title={`Credits and metadata of “${keyView?.name ?? ""}”`}
    >
      {keyView ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            if (invalid) return;
            setBusy(true);
            setError(null);
            // Only what changed: an untouched balance is not sent back (it may have moved meanwhile).
            const now = creditsPatch(value);
            const before = creditsPatch(creditsOf(keyView));
            const changed = Object.fromEntries(
              Object.entries(now).filter(
                ([field, v]) => JSON.stringify(v) !== JSON.stringify(before[field as keyof typeof before]),
              ),
            );
            if (Object.keys(changed).length === 0) return onClose();
            api
              .updateKey(keyView.id, changed)
              .then(() => {
                onDone();
                onClose();
              })
              .catch(setError)
              .finally(() => setBusy(false));
          }}
        >
          <Stack>
            {keyView.replaced_by !== null || keyView.remaining !== null ? (
              <Text size="sm">
                A key and the keys that replace it by rotation share one balance: a change here is theirs too.
              </Text>
            ) : null}
            <CreditsFields value={value} onChange={setValue} error={error} />
            <FormError error={error} fields={["remaining", "refill", "meta", "external_id"]} />
            <Group justify="end">
              <Button variant="default" onClick={onClose}>
                Cancel
              </Button>
              <Button type="submit" loading={busy} disabled={invalid}>
                Save
              </Button>
            </Group>
          </Stack>
        </form>
      ) : null}
    </Modal>
  );
}
