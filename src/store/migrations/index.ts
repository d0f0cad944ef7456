import type { Migration, MigrationProvider } from "kysely";
import * as m001 from "./001-initial.ts";
import * as m002 from "./002-people-and-audit.ts";
import * as m003 from "./003-limits-and-usage.ts";
import * as m004 from "./004-key-families.ts";
import * as m005 from "./005-environments.ts";
import * as m006 from "./006-events.ts";
import * as m007 from "./007-webhooks.ts";
import * as m008 from "./008-leaks.ts";
import * as m009 from "./009-expiry-policies.ts";
import * as m010 from "./010-credits-and-meta.ts";
import * as m011 from "./011-recovery.ts";
import * as m012 from "./012-merchant-accounts.ts";
import * as m013 from "./013-memberships.ts";
import * as m014 from "./014-credential-roles.ts";
import * as m015 from "./015-membership-merchant-accounts.ts";

/** Migrations live in code (not a folder scan) so they work the same from tsx, a bundle or tests. */
export const migrationProvider: MigrationProvider = {
  async getMigrations(): Promise<Record<string, Migration>> {
    return {
      "001-initial": m001,
      "002-people-and-audit": m002,
      "003-limits-and-usage": m003,
      "004-key-families": m004,
      "005-environments": m005,
      "006-events": m006,
      "007-webhooks": m007,
      "008-leaks": m008,
      "009-expiry-policies": m009,
      "010-credits-and-meta": m010,
      "011-recovery": m011,
      "012-merchant-accounts": m012,
      "013-memberships": m013,
      "014-credential-roles": m014,
      "015-membership-merchant-accounts": m015,
    };
  },
};
