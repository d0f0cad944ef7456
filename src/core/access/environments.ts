import type { Actor } from "../actor.ts";
import { LatchkeyError } from "../errors.ts";
import type { Environment } from "../key-format.ts";

/**
 * Live and test are two worlds. A caller acting in test (a test key, a test API user's password, a
 * console switched to Test) sees and changes test objects only: a live object answers it as another
 * company's does, 404. A caller acting in live may manage both, as a platform's own staff do.
 */
export function actingEnvironment(actor: Actor): Environment {
  return actor.kind === "platform" ? "live" : actor.environment;
}

/** Whether a caller acting in `acting` may see an object of `object` (null: company-wide, live only). */
export function visibleFrom(acting: Environment, object: Environment | null): boolean {
  return acting === "live" || object === "test";
}

/** Whether the actor may see an object of `environment` at all. */
export function sees(actor: Actor, environment: Environment | null): boolean {
  return visibleFrom(actingEnvironment(actor), environment);
}

/** The environment a list must be cut to for this actor, or undefined for no cut. */
export function listedEnvironment(actor: Actor, asked?: Environment): Environment | undefined {
  return actingEnvironment(actor) === "test" ? "test" : asked;
}

/**
 * Whether the actor may learn who another caller was (in an audit event, a `created_by`): a key or an
 * API user of the other world is a live object like any other, so a test caller is not told its id or
 * prefix. People are company-wide, and the platform is no secret.
 */
export function seesActor(
  viewer: Actor,
  actorType: string,
  actorEnvironment: Environment | null | undefined,
): boolean {
  if (actorType !== "key" && actorType !== "credential") return true;
  return sees(viewer, actorEnvironment ?? null);
}

/** A developer writes test keys only (the role's rule), whichever way the console is switched. */
export function restrictedToTest(actor: Actor): boolean {
  return actor.kind === "user" && actor.role === "developer";
}

/** Before creating an object in `environment`. */
export function assertMayCreateIn(actor: Actor, environment: Environment): void {
  if (environment === "test") return;
  if (actingEnvironment(actor) === "test") {
    throw new LatchkeyError("ENVIRONMENT_NOT_ALLOWED", "A test caller creates test objects only.", {
      field: "environment",
    });
  }
  if (restrictedToTest(actor)) {
    throw new LatchkeyError("FORBIDDEN", "Developers may create and change test keys only.");
  }
}

/**
 * Before changing an existing object: one the actor cannot see is not there (404); a live one a
 * developer can see but not change.
 */
export function assertMayChange(actor: Actor, environment: Environment, what = "object"): void {
  if (!sees(actor, environment)) throw new LatchkeyError("NOT_FOUND", `No such ${what}.`);
  if (environment === "live" && restrictedToTest(actor)) {
    throw new LatchkeyError("FORBIDDEN", "Developers may create and change test keys only.");
  }
}

/** Before reading an existing object. */
export function assertSees(actor: Actor, environment: Environment, what = "object"): void {
  if (!sees(actor, environment)) throw new LatchkeyError("NOT_FOUND", `No such ${what}.`);
}

/** For what spans both worlds (the whole audit chain): a test caller may not ask. */
export function assertActsInLive(actor: Actor): void {
  if (actingEnvironment(actor) === "test") {
    throw new LatchkeyError("ENVIRONMENT_NOT_ALLOWED", "This covers live and test; ask as a live caller.");
  }
}
