// The provider under `ai` 6 and `@ai-sdk/openai-compatible` 2, on every supported Node (the cases: ./cases.ts).
import { createOpenAICompatible } from "@ai-sdk/openai-compatible"
import * as ai from "ai"
import { providerCases } from "./cases.js"

providerCases({ name: "ai 6", ai, createOpenAICompatible })
