// generateText (non-streamed) from the Vercel AI SDK's @ai-sdk/anthropic provider, against the
// gateway at GATEWAY_URL, once per model named on the command line. Prints one JSON line per model;
// exits 1 with the SDK's error (and its cause) when a call fails.
import { createAnthropic } from "@ai-sdk/anthropic";
import { generateText } from "ai";

const anthropic = createAnthropic({ baseURL: `${process.env.GATEWAY_URL}/v1`, apiKey: "unused-by-an-open-gateway" });
let failed = false;
for (const model of process.argv.slice(2)) {
  try {
    const result = await generateText({
      model: anthropic(model),
      prompt: "Say hello to the gateway.",
      maxOutputTokens: 64,
      maxRetries: 0,
    });
    console.log(JSON.stringify({ model, text: result.text, finishReason: result.finishReason, usage: result.usage }));
  } catch (error) {
    failed = true;
    const cause = error?.cause?.message ?? error?.cause ?? "";
    console.log(JSON.stringify({ model, error: `${error?.name}: ${error?.message}`, cause: String(cause).slice(0, 2000) }));
  }
}
process.exit(failed ? 1 : 0);
