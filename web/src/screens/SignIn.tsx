import {
  Alert,
  Anchor,
  Button,
  Center,
  Code,
  Group,
  Image,
  List,
  Paper,
  PasswordInput,
  SimpleGrid,
  Stack,
  Text,
  TextInput,
  Title,
} from "@mantine/core";
import { type ReactNode, useEffect, useState } from "react";
import { ApiError, api } from "../api/client.ts";
import type { Me } from "../api/types.ts";
import { errorFor, FormError } from "../components/errors.tsx";
import { NewPasswordFields, passwordsDiffer } from "../components/NewPasswordFields.tsx";
import { SecretLine } from "../components/ShowOnce.tsx";
import { can } from "../lib/roles.ts";

function Frame({ title, children }: { title: string; children: ReactNode }) {
  return (
    <Center mih="100vh" p="md" bg="gray.1">
      <Paper withBorder shadow="sm" p="xl" w="100%" maw={480} component="main">
        <Text fw={800} c="indigo.9" mb={4}>
          Latchkey
        </Text>
        <Title order={1} size="h2" mb="md">
          {title}
        </Title>
        {children}
      </Paper>
    </Center>
  );
}

/** Email and password, then the authenticator code when the account has 2FA. */
export function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [needCode, setNeedCode] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [forgot, setForgot] = useState(false);

  if (forgot) return <ForgotPassword email={email} onBack={() => setForgot(false)} />;

  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      const result = await api.login({ email, password, ...(needCode ? { totp_code: code } : {}) });
      api.csrf = result.csrf_token;
      onSignedIn();
    } catch (err) {
      if (err instanceof ApiError && err.code === "TOTP_REQUIRED") {
        setNeedCode(true);
      } else {
        setError(err);
      }
      setCode("");
    } finally {
      setBusy(false);
    }
  };

  return (
    <Frame title={needCode ? "Two-factor code" : "Sign in"}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <Stack>
          {needCode ? (
            <>
              <Text>
                Enter the 6-digit code from your authenticator app for <strong>{email}</strong>, or one of
                your recovery codes.
              </Text>
              <TextInput
                label="Authentication code"
                name="totp_code"
                autoComplete="one-time-code"
                value={code}
                onChange={(e) => setCode(e.currentTarget.value.trim())}
                required
                autoFocus
                error={
                  error instanceof ApiError && error.code === "TOTP_INVALID"
                    ? "That code is wrong or already used."
                    : undefined
                }
              />
              <FormError error={error instanceof ApiError && error.code === "TOTP_INVALID" ? null : error} />
              <Group justify="space-between">
                <Anchor
                  component="button"
                  type="button"
                  onClick={() => {
                    setNeedCode(false);
                    setPassword("");
                    setError(null);
                  }}
                >
                  Use another account
                </Anchor>
                <Button type="submit" loading={busy}>
                  Verify
                </Button>
              </Group>
            </>
          ) : (
            <>
              <TextInput
                label="Email"
                type="email"
                autoComplete="username"
                value={email}
                onChange={(e) => setEmail(e.currentTarget.value)}
                required
                autoFocus
              />
              <PasswordInput
                label="Password"
                autoComplete="current-password"
                value={password}
                onChange={(e) => setPassword(e.currentTarget.value)}
                required
              />
              <FormError error={error} />
              <Group justify="space-between">
                <Anchor component="button" type="button" onClick={() => setForgot(true)}>
                  Forgot password?
                </Anchor>
                <Button type="submit" loading={busy}>
                  Sign in
                </Button>
              </Group>
            </>
          )}
        </Stack>
      </form>
    </Frame>
  );
}

/** Forgot password: one email field; the answer is the same whether or not it has an account. */
function ForgotPassword({ email: initial, onBack }: { email: string; onBack: () => void }) {
  const [email, setEmail] = useState(initial);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [sent, setSent] = useState<string | null>(null);
  return (
    <Frame title="Reset your password">
      {sent ? (
        <Stack>
          <Alert color="indigo" variant="light" role="status">
            {sent}
          </Alert>
          <Text size="sm">
            The link works once, for an hour. Check your spam folder if it does not arrive.
          </Text>
          <Anchor component="button" type="button" onClick={onBack}>
            Back to sign in
          </Anchor>
        </Stack>
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            setBusy(true);
            setError(null);
            api
              .forgotPassword(email.trim())
              .then((r) => setSent(r.message))
              .catch(setError)
              .finally(() => setBusy(false));
          }}
        >
          <Stack>
            <Text>Enter the email you sign in with. We send a link to choose a new password.</Text>
            <TextInput
              label="Email"
              type="email"
              autoComplete="username"
              value={email}
              onChange={(e) => setEmail(e.currentTarget.value)}
              required
              autoFocus
              error={errorFor(error, "email")}
            />
            <FormError error={error} fields={["email"]} />
            <Group justify="space-between">
              <Anchor component="button" type="button" onClick={onBack}>
                Back to sign in
              </Anchor>
              <Button type="submit" loading={busy}>
                Send link
              </Button>
            </Group>
          </Stack>
        </form>
      )}
    </Frame>
  );
}

/**
 * The page a reset or invitation link opens. The token is in the #fragment (never sent to a server);
 * it is read once and wiped from the address bar, so it is not left in history or shared by accident.
 */
export function ResetPassword({ invitation, onDone }: { invitation: boolean; onDone: () => void }) {
  const [token] = useState(() => {
    const found = /token=([0-9A-Za-z]+)/.exec(window.location.hash)?.[1] ?? "";
    window.history.replaceState(null, "", window.location.pathname);
    return found;
  });
  const [next, setNext] = useState("");
  const [again, setAgain] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);
  const mismatch = passwordsDiffer(next, again);
  const tokenError = error instanceof ApiError && error.code === "TOKEN_INVALID";
  if (done) {
    return (
      <Frame title="Password set">
        <Stack>
          <Alert color="green" variant="light" role="status">
            Your password is set. Sign in as {done} with it.
          </Alert>
          <Button onClick={onDone} data-autofocus>
            Go to sign in
          </Button>
        </Stack>
      </Frame>
    );
  }
  return (
    <Frame title={invitation ? "Choose your password" : "Choose a new password"}>
      {token === "" || tokenError ? (
        <Stack>
          <Alert color="red" variant="light" role="alert">
            This link is not valid: it was already used, has expired, or a newer one was sent.
            {invitation ? " Ask whoever invited you to send a new invitation." : " Ask for a new one."}
          </Alert>
          <Button onClick={onDone}>Go to sign in</Button>
        </Stack>
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            if (mismatch) return;
            setBusy(true);
            setError(null);
            api
              .resetPassword(token, next)
              .then((r) => setDone(r.email))
              .catch(setError)
              .finally(() => setBusy(false));
          }}
        >
          <Stack>
            <NewPasswordFields
              next={next}
              again={again}
              onNext={setNext}
              onAgain={setAgain}
              error={error}
              autoFocus
            />
            <FormError error={error} fields={["new_password"]} />
            <Button type="submit" loading={busy}>
              Save password
            </Button>
          </Stack>
        </form>
      )}
    </Frame>
  );
}

/** The first sign-in: replace the temporary password. */
export function ChangePassword({ onDone }: { onDone: () => void }) {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [again, setAgain] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const mismatch = passwordsDiffer(next, again);
  return (
    <Frame title="Choose your password">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (mismatch) return;
          setBusy(true);
          setError(null);
          api
            .changePassword(current, next)
            .then((r) => {
              api.csrf = r.csrf_token;
              onDone();
            })
            .catch(setError)
            .finally(() => setBusy(false));
        }}
      >
        <Stack>
          <Text>Replace the temporary password you were given with one of your own.</Text>
          <PasswordInput
            label="Temporary password"
            autoComplete="current-password"
            value={current}
            onChange={(e) => setCurrent(e.currentTarget.value)}
            required
            error={errorFor(error, "current_password")}
          />
          <NewPasswordFields next={next} again={again} onNext={setNext} onAgain={setAgain} error={error} />
          <FormError error={error} fields={["current_password", "new_password"]} />
          <Button type="submit" loading={busy}>
            Save password
          </Button>
        </Stack>
      </form>
    </Frame>
  );
}

/** 2FA enrolment: QR code and secret, a first code, then the recovery codes shown once. */
export function EnrolTotp({ me, onDone }: { me: Me; onDone: () => void }) {
  const [setup, setSetup] = useState<{ secret: string; otpauth_url: string; qr_svg: string } | null>(null);
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [recovery, setRecovery] = useState<string[] | null>(null);
  const [saved, setSaved] = useState(false);

  useEffect(() => {
    api.totpSetup().then(setSetup).catch(setError);
  }, []);

  if (recovery) {
    const text = `Latchkey recovery codes for ${me.user.email}\n\n${recovery.join("\n")}\n`;
    const download = () => {
      const url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = "latchkey-recovery-codes.txt";
      a.click();
      URL.revokeObjectURL(url);
    };
    return (
      <Frame title="Save your recovery codes">
        <Stack>
          <Alert color="yellow" variant="light" title="Shown once">
            Each code works once in place of an authenticator code. Store them somewhere safe: they will not
            be shown again.
          </Alert>
          <SimpleGrid cols={2} data-testid="recovery-codes">
            {recovery.map((c) => (
              <Code key={c} fz="md" ta="center">
                {c}
              </Code>
            ))}
          </SimpleGrid>
          <Group>
            <Button
              variant="light"
              onClick={() => void navigator.clipboard?.writeText(text).then(() => setSaved(true))}
            >
              Copy codes
            </Button>
            <Button
              variant="light"
              onClick={() => {
                download();
                setSaved(true);
              }}
            >
              Download .txt
            </Button>
          </Group>
          <Button onClick={onDone} variant={saved ? "filled" : "outline"}>
            I have saved them — continue
          </Button>
        </Stack>
      </Frame>
    );
  }

  return (
    <Frame title="Set up two-factor authentication">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          api
            .totpConfirm(code)
            .then((r) => {
              api.csrf = r.csrf_token;
              setRecovery(r.recovery_codes);
            })
            .catch((err) => {
              setError(err);
              setCode("");
            })
            .finally(() => setBusy(false));
        }}
      >
        <Stack>
          <List size="sm" type="ordered">
            <List.Item>Scan the QR code with an authenticator app, or type the secret into it.</List.Item>
            <List.Item>Enter the 6-digit code the app shows.</List.Item>
          </List>
          {setup ? (
            <>
              <Center>
                <Image
                  src={`data:image/svg+xml;base64,${btoa(setup.qr_svg)}`}
                  alt="QR code for your authenticator app"
                  w={200}
                  h={200}
                  bg="white"
                />
              </Center>
              <SecretLine label="Secret" value={setup.secret} />
            </>
          ) : null}
          <TextInput
            label="Code from the app"
            inputMode="numeric"
            autoComplete="one-time-code"
            maxLength={6}
            value={code}
            onChange={(e) => setCode(e.currentTarget.value.trim())}
            required
            error={errorFor(error, "code")}
          />
          <FormError error={error} fields={["code"]} />
          <Button type="submit" loading={busy} disabled={!setup}>
            Turn on 2FA
          </Button>
          <Anchor
            component="button"
            type="button"
            size="sm"
            onClick={() => {
              setError(null);
              api.totpSetup(true).then(setSetup).catch(setError);
            }}
          >
            Start over with a new secret
          </Anchor>
          {can.mustEnrol(me.role) ? null : (
            <Anchor component="button" type="button" onClick={onDone}>
              Skip for now (viewers cannot change anything)
            </Anchor>
          )}
        </Stack>
      </form>
    </Frame>
  );
}
