import { Alert, Button, Center, Paper, Stack, Text, Title } from "@mantine/core";
import { useState } from "react";
import { ApiError, api } from "../api/client.ts";
import type { Me } from "../api/types.ts";
import { FormError } from "../components/errors.tsx";

/**
 * Reads an accept link's token from the #fragment once and wipes it from the address bar, so it is
 * not left in history. The page keeps it while the person signs in first.
 */
export function takeAcceptToken(): string {
  const found = /token=([0-9A-Za-z]+)/.exec(window.location.hash)?.[1] ?? "";
  window.history.replaceState(null, "", window.location.pathname);
  return found;
}

/**
 * The page an accept link opens, once the person is signed in (the link alone opens nothing: the
 * company joins the login that accepts, so whoever accepts must hold it). Joining switches into it.
 */
export function AcceptMembership({
  me,
  token,
  onJoined,
  onSkip,
}: {
  me: Me;
  token: string;
  onJoined: (companyId: string) => void;
  onSkip: () => void;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const invalid = token === "" || (error instanceof ApiError && error.code === "TOKEN_INVALID");
  return (
    <Center mih="100vh" p="md" bg="gray.1">
      <Paper withBorder shadow="sm" p="xl" w="100%" maw={480} component="main">
        <Text fw={800} c="indigo.9" mb={4}>
          Latchkey
        </Text>
        <Title order={1} size="h2" mb="md">
          Join a company
        </Title>
        {invalid ? (
          <Stack>
            <Alert color="red" variant="light" role="alert">
              This link is not valid for {me.user.email}: it was already used, has expired, a newer one was
              sent, or it was sent to another login. Ask whoever invited you to send it again.
            </Alert>
            <Button onClick={onSkip}>Go to the console</Button>
          </Stack>
        ) : (
          <Stack>
            <Text>
              You were invited, as {me.user.email}, to a company on Latchkey. Join it to work in it with the
              role it gave you; you keep your other companies.
            </Text>
            <FormError error={error} fields={[]} />
            <Button
              loading={busy}
              onClick={() => {
                setBusy(true);
                setError(null);
                api
                  .acceptMembership(token)
                  .then((r) => onJoined(r.company.id))
                  .catch((e: unknown) => {
                    setError(e);
                    setBusy(false);
                  });
              }}
            >
              Join the company
            </Button>
            <Button variant="subtle" onClick={onSkip}>
              Not now
            </Button>
          </Stack>
        )}
      </Paper>
    </Center>
  );
}
