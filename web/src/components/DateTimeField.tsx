import { TextInput } from "@mantine/core";
import { dateTimeHint, formatDate, parseDateTime } from "../lib/format.ts";

/**
 * A date and time typed in the browser's locale, in the same form every list and dialog shows dates
 * (a browser's own datetime picker follows the operating system instead, which need not match). On
 * leaving the field a date it can read is written back in that form, so the person sees what was read.
 */
export function DateTimeField({
  label,
  description,
  value,
  onChange,
  error,
  w,
}: {
  label: string;
  description?: string;
  value: string;
  onChange: (text: string) => void;
  error?: string | undefined;
  w?: Parameters<typeof TextInput>[0]["w"];
}) {
  const hint = dateTimeHint();
  const problem = dateTimeProblem(value);
  return (
    <TextInput
      label={label}
      description={description ? `${description} (${hint})` : hint}
      placeholder={hint}
      value={value}
      onChange={(e) => onChange(e.currentTarget.value)}
      onBlur={() => {
        const d = parseDateTime(value);
        if (d) onChange(formatDate(d));
      }}
      error={problem ?? error}
      inputMode="text"
      autoComplete="off"
      w={w}
    />
  );
}

/** Why the typed text is not a date, or null (an empty field is no date at all, which is allowed). */
export function dateTimeProblem(text: string): string | null {
  if (!text.trim() || parseDateTime(text)) return null;
  return `Not a date and time: write it as ${dateTimeHint()}.`;
}

/** The typed date as the API takes it, or undefined for none (or one that cannot be read). */
export function dateTimeIso(text: string): string | undefined {
  return parseDateTime(text)?.toISOString();
}
