/**
 * The facade's errors: {@link UnrecoverableError} (BullMQ's name and meaning) and
 * {@link UnsupportedOptionError}, thrown for every BullMQ option the facade cannot honour
 * instead of ignoring it.
 */
import { ValidationError } from "../../core/index.js";

/**
 * Thrown by a processor to fail its job at once, skipping the remaining attempts, as
 * BullMQ's `UnrecoverableError`.
 */
export class UnrecoverableError extends Error {
  constructor(message?: string) {
    super(message);
    this.name = "UnrecoverableError";
  }
}

/**
 * A BullMQ option the facade does not support (see the adapter's README for the list).
 * `argument` names the option, e.g. `opts.parent`.
 */
export class UnsupportedOptionError extends ValidationError {
  constructor(option: string, hint = "remove it (see the differences listed in the README of @nexus-core/core/bullmq)") {
    super(option, `The BullMQ option ${option} is not supported by @nexus-core/core/bullmq: ${hint}.`);
  }
}
