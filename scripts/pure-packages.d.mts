// Declarations of pure-packages.mjs for the TypeScript tests.
export declare const PURE_PACKAGES: readonly string[];
export declare const PURE_ENTRY_PACKAGES: readonly string[];
export declare const EXTRA_BANNED_DEPS: Readonly<Record<string, readonly string[]>>;
export declare const KERNEL_PACKAGES: readonly string[];
export declare const IMPURE_MODULES: readonly string[];
export declare const IMPURE_RUNTIME: readonly string[];
