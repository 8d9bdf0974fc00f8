import type { RunConfig, SectionResult } from "./report.js"

export const run = async (_config: RunConfig): Promise<SectionResult> => ({
  title: "gateway",
  markdown: "todo",
  targets: []
})
