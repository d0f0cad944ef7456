import { ActionIcon, Badge, Button, Group, Stack, Text, TextInput } from "@mantine/core";
import { type ReactNode, type RefObject, useCallback, useMemo, useRef, useState } from "react";
import { formatIpRule, MAX_ALLOWLIST_ENTRIES, parseIpRule } from "../../../src/core/ip.ts";

/**
 * The one rule for an entry joining an allowlist, used by Add, by Enter and by a form's submit: the list
 * with the entry added in the server's canonical form, or why it cannot join, in the words shown under
 * the input.
 */
export function addIpEntry(
  entries: readonly string[],
  text: string,
): { ok: true; entries: string[] } | { ok: false; problem: string } {
  const t = text.trim();
  const rule = parseIpRule(t);
  if (!rule) {
    if (t.includes("/"))
      return {
        ok: false,
        problem: `"${t}" is not a valid CIDR range (an address, a slash, and a prefix length).`,
      };
    return { ok: false, problem: `"${t}" is not a valid IPv4 or IPv6 address.` };
  }
  const canonical = formatIpRule(rule);
  if (entries.includes(canonical)) return { ok: false, problem: `${canonical} is already in the list.` };
  if (entries.length >= MAX_ALLOWLIST_ENTRIES)
    return { ok: false, problem: `At most ${MAX_ALLOWLIST_ENTRIES} entries.` };
  return { ok: true, entries: [...entries, canonical] };
}

/** An allowlist being edited: the entries added so far, and what is typed but not yet added. */
export interface IpList {
  entries: string[];
  setEntries: (entries: string[]) => void;
  draft: string;
  setDraft: (draft: string) => void;
  /** Why the typed entry cannot be added; null when nothing is typed or it is fine. */
  problem: string | null;
  /** What a submit would save now: the entries, plus the typed one when it is valid. */
  pending: string[];
  /**
   * For a form's submit, so nothing typed is dropped: a valid typed entry is added and the list to save
   * returned; an invalid one keeps the form from saving (null), with the focus moved to it and its reason
   * already shown under it.
   */
  commit: () => string[] | null;
  /** Back to `entries` with nothing typed: a dialog that opens again, or Undo. */
  reset: (entries: string[]) => void;
  inputRef: RefObject<HTMLInputElement | null>;
}

export function useIpList(initial: readonly string[] = []): IpList {
  const [entries, setEntries] = useState<string[]>(() => [...initial]);
  const [draft, setDraft] = useState("");
  const inputRef = useRef<HTMLInputElement | null>(null);
  const attempt = useMemo(() => (draft.trim() === "" ? null : addIpEntry(entries, draft)), [entries, draft]);
  const commit = useCallback((): string[] | null => {
    if (attempt === null) return entries;
    if (!attempt.ok) {
      inputRef.current?.focus();
      return null;
    }
    setEntries(attempt.entries);
    setDraft("");
    return attempt.entries;
  }, [attempt, entries]);
  const reset = useCallback((to: readonly string[]) => {
    setEntries([...to]);
    setDraft("");
  }, []);
  return {
    entries,
    setEntries,
    draft,
    setDraft,
    problem: attempt && !attempt.ok ? attempt.problem : null,
    pending: attempt?.ok ? attempt.entries : entries,
    commit,
    reset,
    inputRef,
  };
}

/**
 * Single addresses and CIDR ranges, IPv4 and IPv6, checked as they are typed with the same parser the
 * server uses, and kept in the server's canonical form. The form owns the list (`useIpList`), so its
 * submit can keep what was typed but not added.
 */
export function IpEditor({
  list,
  onChange,
  label = "Allowed IPs",
  error,
  disabled,
  emptyText = "No restriction: requests from any address are accepted.",
  note,
}: {
  list: IpList;
  /** Called after an entry is added or removed (not while one is typed). */
  onChange?: (entries: string[]) => void;
  label?: string;
  error?: string | undefined;
  disabled?: boolean;
  /** What an empty list means here. */
  emptyText?: ReactNode;
  /** Shown under a list that has entries: another list that applies as well. */
  note?: ReactNode;
}) {
  const { entries, draft, problem } = list;
  const set = (next: string[]) => {
    list.setEntries(next);
    onChange?.(next);
  };
  const add = () => {
    if (draft.trim() === "") return;
    const result = addIpEntry(entries, draft);
    if (!result.ok) return;
    set(result.entries);
    list.setDraft("");
  };
  return (
    <Stack gap="xs">
      {/* The Add button sits inside the input, so it stays level with it however the description wraps. */}
      <TextInput
        ref={list.inputRef}
        label={label}
        description="An address (203.0.113.7, 2001:db8::1) or a range (203.0.113.0/24)."
        placeholder="203.0.113.0/24"
        value={draft}
        onChange={(e) => list.setDraft(e.currentTarget.value)}
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
      {entries.length === 0 ? (
        <Text size="sm" c="dimmed" data-testid="ip-scope">
          {emptyText}
        </Text>
      ) : (
        <>
          <Group gap="xs" data-testid="ip-list">
            {entries.map((entry) => (
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
                      onClick={() => set(entries.filter((v) => v !== entry))}
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
          {note ? (
            <Text size="sm" c="dimmed" data-testid="ip-scope">
              {note}
            </Text>
          ) : null}
        </>
      )}
    </Stack>
  );
}
