import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";

/** A message as the local SMTP server received it, its text decoded. */
export interface ReceivedMail {
  from: string;
  to: string[];
  subject: string;
  text: string;
  raw: string;
}

/** Undoes quoted-printable (nodemailer uses it for long lines and for "="). */
function decodeQuotedPrintable(body: string): string {
  return body
    .replace(/=\r?\n/g, "")
    .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

function parse(raw: string, from: string, to: string[]): ReceivedMail {
  const split = raw.indexOf("\r\n\r\n");
  const head = raw.slice(0, split).replace(/\r\n[ \t]+/g, " ");
  const body = raw.slice(split + 4);
  const header = (name: string) => new RegExp(`^${name}: (.*)$`, "im").exec(head)?.[1]?.trim() ?? "";
  const qp = /quoted-printable/i.test(header("Content-Transfer-Encoding"));
  return { from, to, subject: header("Subject"), text: qp ? decodeQuotedPrintable(body) : body, raw };
}

/**
 * A real SMTP server on a spare local port (the `smtp-server` package), keeping every message it is
 * given. No TLS and no login: it listens on 127.0.0.1 only.
 */
export class LocalSmtp {
  readonly messages: ReceivedMail[] = [];
  private readonly server: SMTPServer;
  private waiters: (() => void)[] = [];

  constructor() {
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ["STARTTLS", "AUTH"],
      logger: false,
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("end", () => {
          const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : "";
          const to = session.envelope.rcptTo.map((r) => r.address);
          this.messages.push(parse(Buffer.concat(chunks).toString("utf8"), from, to));
          for (const w of this.waiters.splice(0)) w();
          callback();
        });
      },
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const { port } = this.server.server.address() as AddressInfo;
    return `smtp://127.0.0.1:${port}`;
  }

  /** The messages to `to`, oldest first. */
  to(to: string): ReceivedMail[] {
    return this.messages.filter((m) => m.to.includes(to));
  }

  /** Waits (up to `ms`) for the `n`th message to `to` and returns it. */
  async waitFor(to: string, n = 1, ms = 5000): Promise<ReceivedMail> {
    const deadline = Date.now() + ms;
    for (;;) {
      const got = this.to(to);
      if (got.length >= n) return got[n - 1] as ReceivedMail;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no message ${n} to ${to} within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits (up to `ms`) for a message to `to` that `match` accepts, whenever it came. */
  async waitForMatch(to: string, match: (m: ReceivedMail) => boolean, ms = 5000): Promise<ReceivedMail> {
    const deadline = Date.now() + ms;
    for (;;) {
      const got = this.to(to).find(match);
      if (got) return got;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching message to ${to} within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** The token in a link of the message (`…#token=…`). */
export function tokenOf(mail: { text: string }): string {
  const m = /#token=([0-9A-Za-z]+)/.exec(mail.text);
  if (!m) throw new Error(`no link in: ${mail.text}`);
  return m[1] as string;
}

/** The link itself. */
export function linkOf(mail: { text: string }): string {
  const m = /(https?:\/\/\S+#token=[0-9A-Za-z]+)/.exec(mail.text);
  if (!m) throw new Error(`no link in: ${mail.text}`);
  return m[1] as string;
}
