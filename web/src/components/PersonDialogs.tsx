import { Button, Group, Modal, PasswordInput, Stack, Text } from "@mantine/core";
import { type ReactNode, useState } from "react";
import { api } from "../api/client.ts";
import { errorFor, FormError } from "./errors.tsx";
import { NewPasswordFields, passwordsDiffer } from "./NewPasswordFields.tsx";
import { ShowOnceModal } from "./ShowOnce.tsx";
import { TotpInput } from "./TotpInput.tsx";

/** A confirmation that takes the acting person's own 2FA code (a step-up), then runs `action`. */
export function CodeConfirmDialog({
  opened,
  title,
  children,
  confirmLabel,
  color,
  action,
  onClose,
}: {
  opened: boolean;
  title: string;
  children: ReactNode;
  confirmLabel: string;
  color?: string;
  action: (code: string) => Promise<void>;
  onClose: () => void;
}) {
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const close = () => {
    setCode("");
    setError(null);
    onClose();
  };
  return (
    <Modal opened={opened} onClose={close} title={title}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          action(code)
            .then(close)
            .catch((err) => {
              setError(err);
              setCode("");
            })
            .finally(() => setBusy(false));
        }}
      >
        <Stack>
          {children}
          <TotpInput value={code} onChange={setCode} error={errorFor(error, "totp_code")} autoFocus />
          <FormError error={error} fields={["totp_code"]} />
          <Group justify="end">
            <Button variant="default" onClick={close}>
              Cancel
            </Button>
            <Button type="submit" loading={busy} color={color}>
              {confirmLabel}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

/** Account menu › Change password: the current one, then the new one twice. */
export function ChangePasswordDialog({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [again, setAgain] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState(false);
  const mismatch = passwordsDiffer(next, again);
  const close = () => {
    setCurrent("");
    setNext("");
    setAgain("");
    setError(null);
    setDone(false);
    onClose();
  };
  return (
    <Modal opened={opened} onClose={close} title="Change password">
      {done ? (
        <Stack>
          <Text>Your password is changed. Your other sessions were signed out.</Text>
          <Group justify="end">
            <Button onClick={close} data-autofocus>
              Done
            </Button>
          </Group>
        </Stack>
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            if (mismatch) return;
            setBusy(true);
            setError(null);
            api
              .changePassword(current, next)
              .then((r) => {
                // The session was replaced: its CSRF token with it.
                api.csrf = r.csrf_token;
                setDone(true);
              })
              .catch(setError)
              .finally(() => setBusy(false));
          }}
        >
          <Stack>
            <PasswordInput
              label="Current password"
              autoComplete="current-password"
              value={current}
              onChange={(e) => setCurrent(e.currentTarget.value)}
              required
              data-autofocus
              error={errorFor(error, "current_password")}
            />
            <NewPasswordFields next={next} again={again} onNext={setNext} onAgain={setAgain} error={error} />
            <FormError error={error} fields={["current_password", "new_password"]} />
            <Group justify="end">
              <Button variant="default" onClick={close}>
                Cancel
              </Button>
              <Button type="submit" loading={busy}>
                Change password
              </Button>
            </Group>
          </Stack>
        </form>
      )}
    </Modal>
  );
}

/** Account menu › New recovery codes: a current code, then ten new codes shown once. */
export function RecoveryCodesDialog({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  const [codes, setCodes] = useState<string[] | null>(null);
  return (
    <>
      <CodeConfirmDialog
        opened={opened && codes === null}
        title="New recovery codes"
        confirmLabel="Make new codes"
        action={async (code) => {
          setCodes((await api.regenerateRecoveryCodes(code)).recovery_codes);
        }}
        onClose={() => {
          if (codes === null) onClose();
        }}
      >
        <Text>Ten new recovery codes replace your current ones, which stop working at once.</Text>
      </CodeConfirmDialog>
      <ShowOnceModal
        opened={opened && codes !== null}
        title="Your new recovery codes"
        fields={codes ? [{ label: "Recovery codes", value: codes.join(" ") }] : []}
        note="Each works once in place of an authenticator code."
        onClose={() => {
          setCodes(null);
          onClose();
        }}
      />
    </>
  );
}
