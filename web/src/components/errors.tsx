import { Alert } from "@mantine/core";
import { ApiError } from "../api/client.ts";
import { explain, fieldOf } from "../api/messages.ts";

/** The message for one input, when the error belongs to it. */
export function errorFor(err: unknown, field: string): string | undefined {
  if (!(err instanceof ApiError)) return undefined;
  const f = fieldOf(err);
  if (!f) return undefined;
  return f === field || f.startsWith(`${field}.`) || f.startsWith(`${field}[`) ? explain(err) : undefined;
}

/** An error not tied to one of `fields`, shown beside the action that caused it. */
export function FormError({ error, fields = [] }: { error: unknown; fields?: string[] }) {
  if (!error) return null;
  if (error instanceof ApiError) {
    const f = fieldOf(error);
    if (f && fields.some((name) => f === name || f.startsWith(`${name}.`) || f.startsWith(`${name}[`)))
      return null;
    return (
      <Alert color="red" variant="light" role="alert" title="Not done">
        {explain(error)}
      </Alert>
    );
  }
  return (
    <Alert color="red" variant="light" role="alert" title="Not done">
      {error instanceof Error ? error.message : String(error)}
    </Alert>
  );
}
