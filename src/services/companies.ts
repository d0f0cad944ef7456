import { hash } from "@node-rs/argon2";
import type { Kysely } from "kysely";
import { type Catalog, MANAGEMENT_GROUP_ID } from "../core/catalog.ts";
import { LatchkeyError } from "../core/errors.ts";
import { newId } from "../core/ids.ts";
import { companySlug, looksLikeCredentialUsername } from "../core/names.ts";
import { randomBase62 } from "../core/random.ts";
import { companies, type Db, users } from "../store/repositories.ts";
import type { Database } from "../store/schema.ts";
import type { Ctx } from "./actor.ts";
import type { AuditService } from "./audit.ts";
import type { CredentialService } from "./credentials.ts";
import type { CreatedKey, KeyService } from "./keys.ts";

export interface CreatedCompany {
  company: { id: string; name: string; slug: string; created_at: string };
  /**
   * An email that already had a login gets no temporary password: its ownership waits until its person
   * accepts it, signed in, with `accept_link` (for the platform to pass on).
   */
  owner: {
    id: string;
    email: string;
    existing_login: boolean;
    temporary_password?: string;
    accept_link?: string;
  };
  default_credential: { id: string; username: string };
  /** Test keys belong to test API users: the company starts with one, so it can issue them at once. */
  default_test_credential: { id: string; username: string };
  management_key: CreatedKey;
}

export interface CompanyServiceDeps {
  db: Kysely<Database>;
  catalog: Catalog;
  clock: () => Date;
  credentials: CredentialService;
  keys: KeyService;
  audit: AuditService;
  /** Writes the accept link of an existing login's offer (see RecoveryService.issue). */
  offerMembership: (tx: Db, user: { id: string }, companyId: string) => Promise<string>;
}

export class CompanyService {
  constructor(private readonly deps: CompanyServiceDeps) {}

  /**
   * A tenant with what comes with the account: an owner with a temporary password, a default live and a
   * default test API credential holding the whole catalog, and a live management key. All or nothing.
   */
  async create(input: { name: string; owner_email: string }, ctx: Ctx): Promise<CreatedCompany> {
    const now = this.deps.clock();
    const email = input.owner_email.trim().toLowerCase();
    if (looksLikeCredentialUsername(email)) {
      throw new LatchkeyError(
        "VALIDATION_ERROR",
        "That is an API credential's username, not a person's email.",
        {
          field: "owner_email",
        },
      );
    }
    const temporaryPassword = randomBase62(20);
    const passwordHash = await hash(temporaryPassword, { algorithm: 2 });
    const everything = [...this.deps.catalog.permissions];
    const created = await this.deps.db.transaction().execute(async (tx) => {
      const base = companySlug(input.name);
      let slug = base;
      for (let n = 2; await companies.slugTaken(tx, slug); n++) slug = `${base}${n}`;
      const company = { id: newId("co", now), name: input.name, slug, created_at: now };
      await companies.insert(tx, company);
      // The owner may be a person who has a login already (an owner of another company, say): they
      // keep their password, and the ownership is an offer they accept signed in, as for any company's
      // invitation: whoever else knows that login's password must not get the new company with it.
      // The platform, who asks, may know that the login existed.
      const person = await users.addMember(tx, {
        email,
        passwordHash,
        companyId: company.id,
        role: "owner",
        invitedBy: null,
        now,
      });
      // A company just made has no members: only a bug could make this happen.
      if (!person) throw new Error("a new company already had its owner");
      const owner = {
        id: person.id,
        existed: person.existed,
        acceptLink: person.existed ? await this.deps.offerMembership(tx, person, company.id) : null,
      };
      await this.deps.audit.append(tx, ctx, {
        action: "company.created",
        companyId: company.id,
        target: { type: "company", id: company.id },
        changes: { after: { name: company.name, slug } },
      });
      await this.deps.audit.append(tx, ctx, {
        action: "user.created",
        companyId: company.id,
        target: { type: "user", id: owner.id },
        changes: { after: { email, role: "owner" } },
      });
      const credential = await this.deps.credentials.insert(
        tx,
        company.id,
        slug,
        { name: "Default API credential", permissions: everything, is_default: true },
        ctx,
      );
      const testCredential = await this.deps.credentials.insert(
        tx,
        company.id,
        slug,
        {
          name: "Default test API credential",
          environment: "test",
          permissions: everything,
          is_default: true,
        },
        ctx,
      );
      const key = await this.deps.keys.createIn(
        tx,
        company.id,
        {
          name: "Management key",
          description: `Created with the company; holds the catalog and the ${MANAGEMENT_GROUP_ID} group.`,
          environment: "live",
          credential_id: credential.id,
        },
        ctx,
      );
      return { company, owner, credential, testCredential, key };
    });
    return {
      company: {
        id: created.company.id,
        name: created.company.name,
        slug: created.company.slug,
        created_at: now.toISOString(),
      },
      owner: {
        id: created.owner.id,
        email,
        existing_login: created.owner.existed,
        ...(created.owner.acceptLink
          ? { accept_link: created.owner.acceptLink }
          : { temporary_password: temporaryPassword }),
      },
      default_credential: { id: created.credential.id, username: created.credential.username },
      default_test_credential: {
        id: created.testCredential.id,
        username: created.testCredential.username,
      },
      management_key: created.key,
    };
  }
}
