/**
 * What Latchkey writes to people. Plain text only: no HTML to render, no remote images to track, and
 * a link a mail client shows in full. A message never carries a password, key or code, only a link.
 */

const HOURS = (ms: number) => Math.round(ms / 3_600_000);

export function invitationMail(o: { company: string; role: string; link: string; ttlMs: number }) {
  return {
    subject: `You are invited to ${o.company} on Latchkey`,
    text: [
      `You have been invited to manage API keys for ${o.company} as ${o.role}.`,
      "",
      "Choose your password here (the link works once):",
      o.link,
      "",
      `The link expires in ${Math.round(HOURS(o.ttlMs) / 24)} days. If you did not expect this, ignore this message.`,
    ].join("\n"),
  };
}

/** To a person who already has a login and was added to one more company: no link to set a password. */
export function membershipInvitedMail(o: { company: string; role: string; link: string; ttlMs: number }) {
  return {
    subject: `You were invited to ${o.company} on Latchkey`,
    text: [
      `You were invited to ${o.company} as ${o.role}, to manage its API keys. Accept at:`,
      o.link,
      "",
      "Sign in there with the email, password and second factor you already use, then join. If you do",
      'not know the password, choose a new one with "Forgot password" first; the link still works after.',
      `The link works once and expires in ${Math.round(HOURS(o.ttlMs) / 24)} days. Until you accept, you are not a`,
      "member of the company and it gives you nothing; if you did not expect this, ignore this message.",
    ].join("\n"),
  };
}

export function passwordResetMail(o: { link: string; ttlMs: number }) {
  return {
    subject: "Reset your Latchkey password",
    text: [
      "Someone (we hope you) asked to reset the password of this Latchkey account.",
      "",
      "Choose a new password here (the link works once):",
      o.link,
      "",
      `The link expires in ${HOURS(o.ttlMs)} hour${HOURS(o.ttlMs) === 1 ? "" : "s"}. Your other sessions end when you use it.`,
      "If you did not ask for this, ignore this message: your password stays as it is.",
    ].join("\n"),
  };
}

export function totpEnrolledMail(o: { at: Date; ip: string | null }) {
  return {
    subject: "A new two-factor device was added to your Latchkey account",
    text: [
      `A new authenticator was set up for your Latchkey account at ${o.at.toISOString()}${o.ip ? ` from ${o.ip}` : ""}.`,
      "",
      "If this was not you, tell your company's owner now: they can reset your two-factor",
      "authentication, and you can reset your password from the sign-in page.",
    ].join("\n"),
  };
}

export function totpResetMail(o: { by: string; at: Date }) {
  return {
    subject: "Your Latchkey two-factor authentication was reset",
    text: [
      `${o.by} reset the two-factor authentication of your Latchkey account at ${o.at.toISOString()}.`,
      "Your sessions were ended and your recovery codes no longer work.",
      "",
      "At your next sign-in, set up your authenticator app again.",
      "If you did not ask for this, tell your company's owner.",
    ].join("\n"),
  };
}

interface KeyShown {
  name?: unknown;
  prefix?: unknown;
  environment?: unknown;
}

const keyLine = (k: KeyShown) =>
  `"${String(k.name ?? "unnamed")}" (${String(k.prefix ?? "?")}…, ${String(k.environment ?? "?")})`;

/** To a company's owners: one of its keys was found in public. */
export function keyLeakedMail(o: { company: string; key: KeyShown; url: unknown; action: unknown }) {
  const revoked = o.action === "revoked";
  return {
    subject: `A ${o.company} API key was found in public`,
    text: [
      `The API key ${keyLine(o.key)} of ${o.company} was reported as found in public${typeof o.url === "string" ? ` at ${o.url}` : ""}.`,
      "",
      revoked
        ? "It was revoked at once, as your leak policy says. Replace it where it is used."
        : "Your leak policy says to notify only: it still works. Rotate or revoke it now.",
    ].join("\n"),
  };
}

/** To a company's owners: one of its keys expires soon. */
export function keyExpiringMail(o: { company: string; key: KeyShown; expiresAt: unknown }) {
  return {
    subject: `A ${o.company} API key expires soon`,
    text: [
      `The API key ${keyLine(o.key)} of ${o.company} expires at ${String(o.expiresAt)}.`,
      "",
      "Rotate it before then so that what uses it keeps working.",
    ].join("\n"),
  };
}
