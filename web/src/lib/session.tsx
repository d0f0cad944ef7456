import { createContext, useContext } from "react";
import type { CatalogDoc, Environment, Me } from "../api/types.ts";

export interface SessionValue {
  me: Me;
  catalog: CatalogDoc;
  /**
   * The Live / Test switch: every list and form follows it, and every request says it (switched to Test,
   * the server shows and changes test objects only).
   */
  env: Environment;
  setEnv: (env: Environment) => void;
  signOut: () => void;
  /** Moves to another company of the person's: a new session there, and the console loads afresh. */
  switchCompany: (companyId: string) => void;
}

export const SessionContext = createContext<SessionValue | null>(null);

export function useSession(): SessionValue {
  const value = useContext(SessionContext);
  if (!value) throw new Error("useSession outside a signed-in console");
  return value;
}
