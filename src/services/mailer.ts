import nodemailer, { type Transporter } from "nodemailer";

/** One message to one person. The text may carry a single-use link; it is never logged when sent. */
export interface Mail {
  to: string;
  subject: string;
  text: string;
  /** What the message is, for log lines about it (which never carry its text). */
  kind:
    | "invitation"
    | "membership_invited"
    | "password_reset"
    | "totp_enrolled"
    | "totp_reset"
    | "key_leaked"
    | "key_expiring";
}

/** Where the mailer reports; the runtime hands in the server's logger. */
export interface MailLog {
  info(msg: string): void;
  error(obj: unknown, msg: string): void;
}

export interface Mailer {
  /** True when mail really leaves (SMTP_URL is set): invitations are then links, not shown passwords. */
  readonly sends: boolean;
  /** Sends one message; throws when the server refuses it. */
  send(mail: Mail): Promise<void>;
}

/** SMTP through nodemailer: `smtp://` (STARTTLS when offered) or `smtps://` (TLS from the start). */
export class SmtpMailer implements Mailer {
  readonly sends = true;
  private readonly transport: Transporter;

  constructor(
    url: string,
    private readonly from: string,
  ) {
    this.transport = nodemailer.createTransport(url);
  }

  async send(mail: Mail): Promise<void> {
    await this.transport.sendMail({ from: this.from, to: mail.to, subject: mail.subject, text: mail.text });
  }

  close(): void {
    this.transport.close();
  }
}

/** The messages that carry a link someone needs; without SMTP only these are printed. */
const WITH_LINK: ReadonlySet<Mail["kind"]> = new Set(["invitation", "membership_invited", "password_reset"]);

/**
 * No SMTP configured: a message with a link is printed for the operator, at info level, as one line
 * whose message is the mail itself. It is the only place such a link is written: request logs never see
 * it (the token travels in the link's #fragment, which browsers do not send), answers never carry it,
 * and the audit trail records only that a message was made. Notices without a link (a new 2FA device,
 * a leaked key) are not printed: the audit trail and webhooks already tell of those events.
 */
export class OperatorLogMailer implements Mailer {
  readonly sends = false;
  constructor(private readonly log: MailLog) {}

  async send(mail: Mail): Promise<void> {
    if (!WITH_LINK.has(mail.kind)) return;
    this.log.info(
      `email not sent (SMTP_URL is unset); for the operator to pass on:\nTo: ${mail.to}\nSubject: ${mail.subject}\n\n${mail.text}`,
    );
  }
}

/**
 * Sends after the change has committed, in the background, so that neither the time an answer takes
 * nor a failing mail server tells anything or loses the change. A failed send is logged with its kind
 * and recipient, never its text, and not retried: each message can be asked for again (forgot-password
 * again, a reissued invitation), and a retry queue would keep a live link in memory for longer.
 */
export class MailOutbox {
  private readonly pending = new Set<Promise<void>>();

  constructor(
    readonly mailer: Mailer,
    private readonly log: MailLog,
  ) {}

  get sends(): boolean {
    return this.mailer.sends;
  }

  /** Queues a message that must leave only once its transaction has committed: call it after. */
  deliver(mail: Mail): void {
    const p = this.mailer
      .send(mail)
      .catch((err: unknown) => {
        this.log.error(
          { mail: { kind: mail.kind, to: mail.to }, reason: (err as Error)?.message ?? String(err) },
          "email could not be sent",
        );
      })
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /**
   * Runs the work that decides on and writes a message (a reset link) after the answer has gone, so
   * that an answer about an email that has an account takes no longer than one about an email that has
   * none. A failure is logged, never thrown: the answer was the same either way.
   */
  later(kind: Mail["kind"], work: () => Promise<void>): void {
    const p = work()
      .catch((err: unknown) => {
        this.log.error(
          { mail: { kind }, reason: (err as Error)?.message ?? String(err) },
          "email could not be prepared",
        );
      })
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Resolves once every queued message has been sent or has failed (on close, and in tests). */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }
}
