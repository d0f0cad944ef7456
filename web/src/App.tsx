import {
  AppShell,
  Badge,
  Burger,
  Button,
  Center,
  Group,
  Loader,
  Menu,
  NavLink,
  SegmentedControl,
  Text,
  UnstyledButton,
} from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { useCallback, useEffect, useState } from "react";
import { api } from "./api/client.ts";
import type { CatalogDoc, Environment, Me } from "./api/types.ts";
import { ChangePasswordDialog, RecoveryCodesDialog } from "./components/PersonDialogs.tsx";
import { useLoad } from "./lib/hooks.ts";
import { can, companyLevel, ROLE_LABELS } from "./lib/roles.ts";
import { match, RouterProvider, useRouter } from "./lib/router.tsx";
import { SessionContext, useSession } from "./lib/session.tsx";
import { AcceptMembership, takeAcceptToken } from "./screens/AcceptMembership.tsx";
import { AccessControl } from "./screens/AccessControl.tsx";
import { ApiUserDetail } from "./screens/ApiUserDetail.tsx";
import { AuditLog } from "./screens/AuditLog.tsx";
import { ExpiryPolicy } from "./screens/ExpiryPolicy.tsx";
import { KeysPage } from "./screens/KeysPage.tsx";
import { LeakPolicy } from "./screens/LeakPolicy.tsx";
import { MerchantAccountDetail, MerchantAccounts } from "./screens/MerchantAccounts.tsx";
import { ChangePassword, EnrolTotp, ResetPassword, SignIn } from "./screens/SignIn.tsx";
import { UsagePage } from "./screens/UsagePage.tsx";
import { WebhooksPage } from "./screens/WebhooksPage.tsx";

type State =
  | { kind: "loading" }
  | { kind: "signed-out" }
  | { kind: "password"; me: Me }
  | { kind: "enrol"; me: Me }
  | { kind: "ready"; me: Me; catalog: CatalogDoc };

const ENV_KEY = "latchkey.env";

export function App() {
  return (
    <RouterProvider>
      <Console />
    </RouterProvider>
  );
}

function Console() {
  const { path, navigate } = useRouter();
  const [state, setState] = useState<State>({ kind: "loading" });
  // An accept link's token, kept while the person signs in (and changes a password, enrols 2FA) first.
  const [acceptToken] = useState(() =>
    match("/accept-membership", window.location.pathname) ? takeAcceptToken() : "",
  );
  const [env, setEnvState] = useState<Environment>(() => {
    const initial = window.localStorage.getItem(ENV_KEY) === "test" ? "test" : "live";
    api.environment = initial;
    return initial;
  });
  const setEnv = useCallback((e: Environment) => {
    window.localStorage.setItem(ENV_KEY, e);
    api.environment = e;
    setEnvState(e);
  }, []);

  /** Where the signed-in person stands: password to change, 2FA to enrol, or the console. */
  const refresh = useCallback(async (allowSkip = false) => {
    try {
      const me = await api.me();
      api.csrf = me.csrf_token;
      if (me.password_change_required) return setState({ kind: "password", me });
      if (!me.totp_enrolled && (can.mustEnrol(me.role) || !allowSkip) && !skipped.has(me.user.id))
        return setState({ kind: "enrol", me });
      const catalog = await api.catalog();
      setState({ kind: "ready", me, catalog });
    } catch {
      api.csrf = null;
      setState({ kind: "signed-out" });
    }
  }, []);

  useEffect(() => {
    api.onSessionEnded = () => {
      api.csrf = null;
      setState({ kind: "signed-out" });
    };
    void refresh();
  }, [refresh]);

  const signOut = useCallback(() => {
    void api
      .logout()
      .catch(() => {})
      .finally(() => {
        api.csrf = null;
        setState({ kind: "signed-out" });
      });
  }, []);

  const switchCompany = useCallback(
    (companyId: string) => {
      void api
        .switchCompany(companyId)
        .then(() => {
          // A full load, so no list, form or cache of the company left behind survives into the next.
          window.location.assign("/keys");
        })
        .catch(() => void refresh());
    },
    [refresh],
  );

  // A link from an email opens its page whoever is signed in: the token in its #fragment is the proof.
  if (match("/reset-password", path) || match("/accept-invitation", path)) {
    return (
      <ResetPassword
        invitation={path.startsWith("/accept-invitation")}
        onDone={() => {
          navigate("/");
          void refresh();
        }}
      />
    );
  }

  switch (state.kind) {
    case "loading":
      return (
        <Center mih="100vh">
          <Loader aria-label="Loading" />
        </Center>
      );
    case "signed-out":
      return <SignIn onSignedIn={() => void refresh()} />;
    case "password":
      return <ChangePassword onDone={() => void refresh()} />;
    case "enrol":
      return (
        <EnrolTotp
          me={state.me}
          onDone={() => {
            skipped.add(state.me.user.id);
            void refresh(true);
          }}
        />
      );
    case "ready":
      if (match("/accept-membership", path)) {
        return (
          <AcceptMembership
            me={state.me}
            token={acceptToken}
            onJoined={switchCompany}
            onSkip={() => navigate("/keys")}
          />
        );
      }
      return (
        <SessionContext.Provider
          value={{ me: state.me, catalog: state.catalog, env, setEnv, signOut, switchCompany }}
        >
          <Shell />
        </SessionContext.Provider>
      );
  }
}

/** Viewers who chose to skip enrolment are not asked again during this page's life. */
const skipped = new Set<string>();

function Shell() {
  const { me, env, setEnv, signOut, switchCompany } = useSession();
  const companies = me.companies ?? [];
  const company = companies.find((c) => c.id === me.company_id);
  const { path, navigate } = useRouter();
  const [opened, { toggle, close }] = useDisclosure(false);
  const [account, setAccount] = useState<"password" | "recovery" | null>(null);
  const wholeCompany = companyLevel(me);
  // A limited person's own account (the only one the server lists them), named in the header.
  const merchant = useLoad(
    () => (wholeCompany ? Promise.resolve(null) : api.listMerchantAccounts().then((all) => all[0] ?? null)),
    [wholeCompany, me.merchant_account_id],
  );

  const nav = [
    { to: "/keys", label: "API keys", show: true },
    { to: "/usage", label: "Usage", show: true },
    { to: "/merchant-accounts", label: wholeCompany ? "Merchant accounts" : "Merchant account", show: true },
    { to: "/audit", label: "Audit log", show: can.readAudit(me.role) },
    { to: "/webhooks", label: "Webhooks", show: can.manageWebhooks(me.role) && wholeCompany },
    { to: "/settings/access", label: "Settings › Access control", show: true },
    { to: "/settings/leaks", label: "Settings › Leaked keys", show: wholeCompany },
    { to: "/settings/expiry", label: "Settings › Expiry policy", show: wholeCompany },
  ].filter((n) => n.show);

  const go = (to: string) => {
    navigate(to);
    close();
  };

  return (
    <AppShell
      header={{ height: 60 }}
      navbar={{ width: 240, breakpoint: "sm", collapsed: { mobile: !opened } }}
      padding="md"
    >
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger
              opened={opened}
              onClick={toggle}
              hiddenFrom="sm"
              size="sm"
              aria-label="Toggle navigation"
            />
            <UnstyledButton onClick={() => go("/keys")} aria-label="Latchkey home">
              <Text fw={800} c="indigo.9" size="lg">
                Latchkey
              </Text>
            </UnstyledButton>
          </Group>
          <Group gap="sm" wrap="nowrap">
            {merchant.data ? (
              <Badge
                variant="outline"
                color="grape"
                data-testid="current-merchant-account"
                title="You act within this merchant account only"
              >
                {merchant.data.name}
              </Badge>
            ) : null}
            <SegmentedControl
              aria-label="Environment"
              size="xs"
              value={env}
              onChange={(v) => setEnv(v as Environment)}
              data={[
                { value: "live", label: "Live" },
                { value: "test", label: "Test" },
              ]}
              color={env === "live" ? "#1f6b30" : "#a63c0a"}
              data-testid="env-switch"
            />
            <Menu position="bottom-end">
              <Menu.Target>
                <Button variant="subtle" size="compact-sm" aria-label={`Account: ${me.user.email}`}>
                  {companies.length > 1 && company ? (
                    <Text size="sm" fw={600} mr={6} data-testid="current-company">
                      {company.name}
                    </Text>
                  ) : null}
                  <Text size="sm" visibleFrom="sm" mr={6}>
                    {me.user.email}
                  </Text>
                  <Badge size="sm" variant="light">
                    {ROLE_LABELS[me.role]}
                  </Badge>
                </Button>
              </Menu.Target>
              <Menu.Dropdown>
                <Menu.Label>{me.user.email}</Menu.Label>
                <Menu.Item onClick={() => setAccount("password")}>Change password</Menu.Item>
                {me.totp_enrolled ? (
                  <Menu.Item onClick={() => setAccount("recovery")}>New recovery codes</Menu.Item>
                ) : null}
                {companies.length > 1 ? (
                  <>
                    <Menu.Divider />
                    <Menu.Label>Switch company</Menu.Label>
                    {companies.map((c) => (
                      <Menu.Item
                        key={c.id}
                        disabled={c.id === me.company_id}
                        onClick={() => switchCompany(c.id)}
                        aria-label={`Switch to ${c.name}`}
                        rightSection={
                          <Text size="xs" c="dimmed">
                            {c.id === me.company_id ? "current" : ROLE_LABELS[c.role]}
                          </Text>
                        }
                      >
                        {c.name}
                      </Menu.Item>
                    ))}
                    <Menu.Divider />
                  </>
                ) : null}
                <Menu.Item onClick={signOut}>Sign out</Menu.Item>
              </Menu.Dropdown>
            </Menu>
            <ChangePasswordDialog opened={account === "password"} onClose={() => setAccount(null)} />
            <RecoveryCodesDialog opened={account === "recovery"} onClose={() => setAccount(null)} />
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="sm" aria-label="Main">
        {nav.map((n) => (
          <NavLink
            key={n.to}
            href={n.to}
            label={n.label}
            active={path === n.to || path.startsWith(`${n.to}/`)}
            onClick={(e) => {
              e.preventDefault();
              go(n.to);
            }}
          />
        ))}
      </AppShell.Navbar>
      <AppShell.Main>
        {/* Live and test are two worlds: a flip of the switch loads every screen afresh in the other one. */}
        <Routes key={env} />
      </AppShell.Main>
    </AppShell>
  );
}

function Routes() {
  const { path, navigate } = useRouter();
  const { me } = useSession();
  const apiUser = match("/api-users/:id", path);
  if (apiUser) return <ApiUserDetail id={apiUser.id ?? ""} />;
  const merchantAccount = match("/merchant-accounts/:id", path);
  if (merchantAccount) return <MerchantAccountDetail id={merchantAccount.id ?? ""} />;
  if (match("/merchant-accounts", path)) return <MerchantAccounts />;
  const usage = match("/usage/:id", path);
  if (usage) return <UsagePage keyId={usage.id ?? null} />;
  if (match("/usage", path)) return <UsagePage keyId={null} />;
  if (match("/audit", path) && can.readAudit(me.role)) return <AuditLog />;
  const wholeCompany = companyLevel(me);
  if (match("/settings/leaks", path) && wholeCompany) return <LeakPolicy />;
  if (match("/settings/expiry", path) && wholeCompany) return <ExpiryPolicy />;
  if (match("/webhooks", path) && can.manageWebhooks(me.role) && wholeCompany) return <WebhooksPage />;
  if (match("/settings/access/people", path)) return <AccessControl tab="people" />;
  if (match("/settings/access", path) || match("/settings/access/api-users", path))
    return <AccessControl tab="api-users" />;
  if (path !== "/keys") queueMicrotask(() => navigate("/keys"));
  return <KeysPage />;
}
