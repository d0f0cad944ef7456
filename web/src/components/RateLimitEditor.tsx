import { Button, Group, NumberInput, Select, Stack, Text } from "@mantine/core";
import { compileLimits, MAX_LIMIT, MAX_LIMITS, type RateLimit } from "../../../src/core/rate-limit.ts";

const WINDOWS = [
  { value: "1s", label: "second" },
  { value: "10s", label: "10 seconds" },
  { value: "1m", label: "minute" },
  { value: "1h", label: "hour" },
  { value: "1d", label: "day" },
];
const UNITS: Record<string, string> = { s: "s", m: "min", h: "h", d: "d" };

/** "second", "minute"… for the usual windows, "30 s" for the others. */
export function windowLabel(window: string): string {
  const known = WINDOWS.find((w) => w.value === window);
  if (known) return known.label;
  return `${window.slice(0, -1)} ${UNITS[window.slice(-1)] ?? window.slice(-1)}`;
}

/** "100 per second, 10,000 per day", or "none". */
export function formatLimits(limits: readonly RateLimit[]): string {
  if (limits.length === 0) return "none";
  return limits.map((l) => `${l.limit.toLocaleString("en")} per ${windowLabel(l.window)}`).join(", ");
}

/** Why the list would be refused, in the server's own words (the same check runs there); null when fine. */
export function limitsProblem(limits: readonly RateLimit[]): string | null {
  const result = compileLimits(limits);
  return result.ok ? null : `Rate limits: ${result.reason}.`;
}

/**
 * Rate limits as rows of "N requests per window", checked as they are edited with the server's parser.
 * Sliding windows: at most N requests in any such window.
 */
export function RateLimitEditor({
  value,
  onChange,
  disabled,
  error,
  label = "Rate limits",
  description,
}: {
  value: RateLimit[];
  onChange: (v: RateLimit[]) => void;
  disabled?: boolean;
  error?: string | undefined;
  label?: string;
  description?: string;
}) {
  const problem = limitsProblem(value) ?? error;
  const set = (i: number, patch: Partial<RateLimit>) =>
    onChange(value.map((l, j) => (j === i ? { ...l, ...patch } : l)));
  const unused = WINDOWS.find((w) => !value.some((l) => l.window === w.value))?.value ?? "1s";
  return (
    <Stack gap="xs" data-testid="rate-limits">
      <div>
        <Text size="sm" fw={500}>
          {label}
        </Text>
        <Text size="xs" c="dimmed">
          {description ??
            "At most this many requests in any sliding window; a request over a limit is refused with RATE_LIMITED."}
        </Text>
      </div>
      {value.length === 0 ? (
        <Text size="sm" c="dimmed">
          No limit.
        </Text>
      ) : null}
      {value.map((l, i) => {
        const windows = WINDOWS.some((w) => w.value === l.window)
          ? WINDOWS
          : [...WINDOWS, { value: l.window, label: windowLabel(l.window) }];
        return (
          // Windows are unique in a valid list; the index keeps rows stable while one is being changed.
          // biome-ignore lint/suspicious/noArrayIndexKey: rows have no identity besides their position
          <Group key={i} gap="xs" align="end" wrap="nowrap" data-testid="rate-limit-row">
            <NumberInput
              label="Requests"
              aria-label={`Requests allowed by limit ${i + 1}`}
              value={l.limit}
              min={1}
              max={MAX_LIMIT}
              allowDecimal={false}
              allowNegative={false}
              thousandSeparator=","
              hideControls
              onChange={(v) => set(i, { limit: typeof v === "number" ? v : Number(v) || 0 })}
              disabled={disabled}
              style={{ flex: 1, minWidth: 0 }}
            />
            <Select
              label="per"
              aria-label={`Window of limit ${i + 1}`}
              data={windows}
              value={l.window}
              allowDeselect={false}
              onChange={(v) => v && set(i, { window: v })}
              disabled={disabled}
              w={{ base: 108, sm: 140 }}
              comboboxProps={{ withinPortal: true }}
            />
            {disabled ? null : (
              <Button
                variant="default"
                px="sm"
                onClick={() => onChange(value.filter((_, j) => j !== i))}
                aria-label={`Remove limit ${i + 1}`}
              >
                Remove
              </Button>
            )}
          </Group>
        );
      })}
      {problem ? (
        <Text size="sm" c="red.8" role="alert">
          {problem}
        </Text>
      ) : null}
      {disabled || value.length >= MAX_LIMITS ? null : (
        <Group>
          <Button
            variant="light"
            size="compact-sm"
            onClick={() => onChange([...value, { limit: 100, window: unused }])}
          >
            Add a limit
          </Button>
        </Group>
      )}
    </Stack>
  );
}
