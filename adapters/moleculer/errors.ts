/**
 * The adapter's errors: a transporter configured in a way it cannot work with is a
 * {@link PgTransporterConfigError}, part of the core's `ValidationError` family.
 */
import { ValidationError } from "../../core/index.js";

/** A `PgTransporter` option (or the broker setting it derives from) that cannot be used; the message says what is allowed. */
export class PgTransporterConfigError extends ValidationError {
  constructor(argument: string, message: string) {
    super(argument, message);
    this.name = "PgTransporterConfigError";
  }
}
