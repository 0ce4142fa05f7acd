// The Vercel AI SDK's @ai-sdk/openai default provider (the Responses API) against the gateway at
// GATEWAY_URL: text, a stream, a tool round trip and structured output, for every model named on
// the command line. One JSON line per (model, case); exits 1 when any case fails.
import { createOpenAI } from "@ai-sdk/openai";
import { generateObject, generateText, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";

const openai = createOpenAI({ baseURL: `${process.env.GATEWAY_URL}/v1`, apiKey: "unused-by-an-open-gateway" });
const cases = {
  text: async (model) => {
    const r = await generateText({ model: openai(model), prompt: "Say hello to the gateway.", maxRetries: 0 });
    return { text: r.text, finishReason: r.finishReason, usage: r.usage, api: r.response.body?.object };
  },
  stream: async (model) => {
    const r = streamText({ model: openai(model), prompt: "Say hello to the gateway.", maxRetries: 0 });
    let text = "";
    for await (const part of r.textStream) text += part;
    return { text, deltas: text.length > 0, finishReason: await r.finishReason, usage: await r.usage };
  },
  tools: async (model) => {
    const calls = [];
    const r = await generateText({
      model: openai(model),
      prompt: "What is the weather in Paris?",
      tools: {
        get_weather: tool({
          description: "The weather in a city",
          inputSchema: z.object({ city: z.string() }),
          execute: async ({ city }) => {
            calls.push(city);
            return `sunny in ${city}`;
          },
        }),
      },
      stopWhen: stepCountIs(3),
      maxRetries: 0,
    });
    return { text: r.text, calls, steps: r.steps.length, finishReason: r.finishReason };
  },
  object: async (model) => {
    const r = await generateObject({
      model: openai(model),
      schema: z.object({ name: z.string(), population: z.number().int() }),
      prompt: "Describe a city.",
      maxRetries: 0,
    });
    return { object: r.object, finishReason: r.finishReason };
  },
};

let failed = false;
for (const model of process.argv.slice(2)) {
  for (const [name, run] of Object.entries(cases)) {
    try {
      console.log(JSON.stringify({ model, case: name, ...(await run(model)) }));
    } catch (error) {
      failed = true;
      const cause = error?.cause?.message ?? error?.cause ?? "";
      console.log(JSON.stringify({ model, case: name, error: `${error?.name}: ${error?.message}`, cause: String(cause).slice(0, 2000) }));
    }
  }
}
process.exit(failed ? 1 : 0);
