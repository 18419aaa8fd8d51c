/** The addon for this process's platform and architecture. */
export function prebuildPath(): string;
/** A directory with Node's node_api.h, or undefined. */
export function nodeHeaders(): string | undefined;
/** The C++ compiler build.mjs runs. */
export const cxx: string;
/** Why the addon cannot be built here, or undefined when it can. */
export function whyNotBuildable(): string | undefined;
