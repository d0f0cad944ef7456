import { TextInput } from "@mantine/core";

/** The step-up field: a current code from the authenticator app, or a recovery code. */
export function TotpInput({
  value,
  onChange,
  error,
  autoFocus,
}: {
  value: string;
  onChange: (v: string) => void;
  error?: string | undefined;
  autoFocus?: boolean;
}) {
  return (
    <TextInput
      label="2FA code"
      description="The 6-digit code from your authenticator app, or a recovery code"
      name="totp_code"
      value={value}
      onChange={(e) => onChange(e.currentTarget.value.trim())}
      autoComplete="one-time-code"
      inputMode="text"
      maxLength={16}
      required
      error={error}
      data-autofocus={autoFocus ? true : undefined}
      data-testid="totp-code"
    />
  );
}
