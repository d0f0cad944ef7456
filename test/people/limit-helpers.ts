import type { LightMyRequestResponse } from "fastify";

/** What a limit test looks at in an answer: its status and its error code ("OK" for a success). */
export interface Answer {
  status: number;
  code: string;
  retryAfter: number | null;
}

export function answerOf(res: LightMyRequestResponse): Answer {
  const error = res.statusCode < 300 ? null : res.json().error;
  return {
    status: res.statusCode,
    code: error?.code ?? "OK",
    retryAfter: error?.details?.retry_after ?? null,
  };
}

/**
 * Sends `count` requests at once and, as soon as one of them is refused with 429, `inside` as well,
 * while the rest may still be on their way: what a guesser who also holds the right answer would try.
 */
export async function burst<T>(
  count: number,
  send: (i: number) => Promise<T>,
  inside: () => Promise<T>,
  statusOf: (answer: T) => number,
): Promise<{ results: T[]; inside: T }> {
  let sent: Promise<T> | null = null;
  const results = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      send(i).then((res) => {
        if (statusOf(res) === 429 && sent === null) sent = inside();
        return res;
      }),
    ),
  );
  if (sent === null) throw new Error("no request of the burst was refused");
  return { results, inside: await sent };
}

/** How many answers carry each status and code, e.g. {"403 TOTP_INVALID": 10, "429 RATE_LIMITED": 90}. */
export function tally(answers: readonly Answer[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of answers) {
    const key = `${a.status} ${a.code}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}
