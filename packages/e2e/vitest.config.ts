import { defineConfig } from "vitest/config"

export default defineConfig({
  // Real sockets and a soak: one file at a time keeps the 2-core machines honest.
  test: { include: ["test/**/*.test.ts"], testTimeout: 30_000, fileParallelism: false }
})
