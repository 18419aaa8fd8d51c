// Leak warnings: a Collection or BPF link handle collected without close() keeps its fds (and so unpinned
// links stay attached) until the process exits. Only a warning: closing stays explicit.
const registry = new FinalizationRegistry<string>((what) => {
  process.emitWarning(
    `${what} was garbage-collected without close(); its file descriptors stay open until exit`,
    {
      type: 'DatapathLeakWarning',
    },
  );
});

/** Watches `owner`; call {@link forget} with the same token when it is closed. */
export function watch(owner: object, what: string, token: object): void {
  registry.register(owner, what, token);
}

/** Stops watching the object registered with `token`. */
export function forget(token: object): void {
  registry.unregister(token);
}
