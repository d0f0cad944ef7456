/** "3 minutes ago", "in 5 hours", or "never" for a missing time. */
export function relativeTime(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "never";
  const diff = new Date(iso).getTime() - now;
  const abs = Math.abs(diff);
  const units: [Intl.RelativeTimeFormatUnit, number][] = [
    ["day", 86_400_000],
    ["hour", 3_600_000],
    ["minute", 60_000],
  ];
  const fmt = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
  for (const [unit, ms] of units) {
    if (abs >= ms) return fmt.format(Math.round(diff / ms), unit);
  }
  return "just now";
}

/**
 * Every date the console shows, in lists, dialogs, the audit drawer and date inputs alike, is in the
 * browser's locale (its language setting), in one numeric form an input can show and read back:
 * 01/03/2031, 12:00 in en-GB, 3/1/2031, 12:00 PM in en-US, 01.03.2031, 12:00 in de-DE.
 */
const DATE_PARTS: Intl.DateTimeFormatOptions = { year: "numeric", month: "2-digit", day: "2-digit" };
const TIME_PARTS: Intl.DateTimeFormatOptions = { hour: "2-digit", minute: "2-digit" };
let formats: { locale: string; dateTime: Intl.DateTimeFormat; day: Intl.DateTimeFormat } | null = null;

/** The browser's locale: the runtime's default, which is the browser's language. */
const browserLocale = () => new Intl.DateTimeFormat().resolvedOptions().locale;

function localFormats(locale = browserLocale()) {
  if (formats?.locale !== locale)
    formats = {
      locale,
      dateTime: new Intl.DateTimeFormat(locale, { ...DATE_PARTS, ...TIME_PARTS }),
      day: new Intl.DateTimeFormat(locale, DATE_PARTS),
    };
  return formats;
}

/** A moment, date and time to the minute, in the browser's locale; "—" for none. */
export function formatDate(iso: string | Date | null | undefined, locale?: string): string {
  if (!iso) return "—";
  return localFormats(locale).dateTime.format(new Date(iso));
}

/** A day, in the browser's locale; "—" for none. */
export function formatDay(iso: string | Date | null | undefined): string {
  if (!iso) return "—";
  return localFormats().day.format(new Date(iso));
}

type FieldPart = "year" | "month" | "day" | "hour" | "minute" | "dayPeriod";

/** The order of the fields in the locale's date-time form, and its AM/PM words if it has them. */
function layout(locale?: string) {
  const f = localFormats(locale).dateTime;
  const order = f
    .formatToParts(new Date(2031, 10, 22, 13, 45))
    .map((p) => p.type)
    .filter((t): t is FieldPart => ["year", "month", "day", "hour", "minute", "dayPeriod"].includes(t));
  const period = (h: number) =>
    f.formatToParts(new Date(2031, 0, 1, h, 0)).find((p) => p.type === "dayPeriod")?.value ?? "";
  return { order, am: period(1).toLowerCase(), pm: period(13).toLowerCase() };
}

/**
 * What a date input shows as its hint: the locale's form with letters, e.g. "DD/MM/YYYY, HH:MM".
 */
export function dateTimeHint(locale?: string): string {
  const sample = localFormats(locale).dateTime.formatToParts(new Date(2031, 10, 22, 13, 45));
  const letters: Partial<Record<string, string>> = {
    year: "YYYY",
    month: "MM",
    day: "DD",
    hour: "HH",
    minute: "MM",
    dayPeriod: "AM/PM",
  };
  return sample.map((p) => (p.type === "literal" ? p.value : (letters[p.type] ?? p.value))).join("");
}

/**
 * Reads a date and time typed in the locale's form (what formatDate writes), as a local time. Any
 * separators do; the time may be left out (midnight). Null when it is not a real date.
 */
export function parseDateTime(text: string, locale?: string): Date | null {
  const { order, am, pm } = layout(locale);
  const tokens = text
    .trim()
    .toLowerCase()
    .match(/[0-9]+|[^\s0-9.,:/-]+/g);
  if (!tokens) return null;
  const v: Partial<Record<FieldPart, number>> = {};
  let i = 0;
  let period: "am" | "pm" | null = null;
  for (const part of order) {
    const t = tokens[i];
    if (t === undefined) break;
    if (part === "dayPeriod") {
      if (t === am || t === "am") period = "am";
      else if (t === pm || t === "pm") period = "pm";
      else return null;
    } else {
      if (!/^[0-9]+$/.test(t)) return null;
      v[part] = Number(t);
    }
    i++;
  }
  // A trailing AM/PM the locale puts elsewhere, or extra words: only an AM/PM word is accepted.
  for (; i < tokens.length; i++) {
    const t = tokens[i] as string;
    if (t === am || t === "am") period = "am";
    else if (t === pm || t === "pm") period = "pm";
    else return null;
  }
  const { year, month, day } = v;
  if (year === undefined || month === undefined || day === undefined || year < 1000) return null;
  let hour = v.hour ?? 0;
  const minute = v.minute ?? 0;
  if (period !== null) {
    if (hour < 1 || hour > 12) return null;
    hour = (hour % 12) + (period === "pm" ? 12 : 0);
  }
  if (hour > 23 || minute > 59) return null;
  const d = new Date(year, month - 1, day, hour, minute);
  // 31/02 rolls over to March: not a date.
  if (d.getFullYear() !== year || d.getMonth() !== month - 1 || d.getDate() !== day) return null;
  return d;
}

/** A countdown such as "23 h 59 min" or "4 min 10 s". */
export function countdown(msLeft: number): string {
  if (msLeft <= 0) return "expired";
  const s = Math.floor(msLeft / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h} h ${m} min`;
  return `${m} min ${s % 60} s`;
}

export const PRESET_LABELS: Record<string, string> = {
  read_only: "Read-only",
  write: "Write",
  full_access: "Full access",
  custom: "Custom",
};

/** The "active" status colour: darker than the palette's teal so it keeps 4.5:1 on a striped or hovered row. */
export const ACTIVE_COLOR = "#0b6b4f";
