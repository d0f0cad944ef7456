import { PasswordInput } from "@mantine/core";
import { errorFor } from "./errors.tsx";

/** Why a form with these two new passwords may not be sent, or undefined. */
export function passwordsDiffer(next: string, again: string): string | undefined {
  return again !== "" && again !== next ? "The two new passwords differ." : undefined;
}

/**
 * A new password typed twice, as every form that sets one asks it (first sign-in, a reset link, the
 * account menu): the server's strength rule in the description, its error on the first field.
 */
export function NewPasswordFields({
  next,
  again,
  onNext,
  onAgain,
  error,
  autoFocus = false,
}: {
  next: string;
  again: string;
  onNext: (value: string) => void;
  onAgain: (value: string) => void;
  error: unknown;
  autoFocus?: boolean;
}) {
  return (
    <>
      <PasswordInput
        label="New password"
        description="A long passphrase: at least 12 characters, not a common password"
        autoComplete="new-password"
        value={next}
        onChange={(e) => onNext(e.currentTarget.value)}
        required
        autoFocus={autoFocus}
        error={errorFor(error, "new_password")}
      />
      <PasswordInput
        label="New password again"
        autoComplete="new-password"
        value={again}
        onChange={(e) => onAgain(e.currentTarget.value)}
        required
        error={passwordsDiffer(next, again)}
      />
    </>
  );
}
