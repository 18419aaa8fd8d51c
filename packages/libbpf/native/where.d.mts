/** The addon for this process's platform, architecture and Node module ABI. */
export function prebuildPath(): string;
/** Node's headers for exactly this Node's module ABI, or undefined. */
export function nodeHeaders(): string | undefined;
/** The C++ compiler build.mjs runs. */
export const cxx: string;
/** Why the addon cannot be built here, or undefined when it can. */
export function whyNotBuildable(): string | undefined;
