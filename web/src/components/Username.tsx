import { Fragment } from "react";

/**
 * An API user's username (`ws_123456@Company.Acme`) that wraps, if it must, only before an "@" or a
 * ".": each piece between them stays whole, so a line never ends in the middle of `ws_123456`.
 */
export function Username({ value }: { value: string }) {
  const pieces = value.split(/(?=[@.])/);
  return (
    <span className="mono token" data-testid="username">
      {pieces.map((p, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: the pieces of one fixed string, in order
        <Fragment key={i}>
          {i > 0 ? <wbr /> : null}
          <span className="token-piece">{p}</span>
        </Fragment>
      ))}
    </span>
  );
}
