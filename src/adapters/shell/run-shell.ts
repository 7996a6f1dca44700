import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { CommandHandler } from "../../app/handle-command.ts";
import type { ChatUser, JobState } from "../../core/model.ts";
import { terminalPhases } from "../../core/model.ts";
import { renderCardText } from "./render-text.ts";

export interface ShellOptions {
  input: Readable;
  output: Writable;
  user: ChatUser;
  /** Names the conversation, like a channel. */
  session: string;
  handle: CommandHandler;
  /** Reads a job's state. */
  readJob(jobId: string): Promise<JobState | undefined>;
  /** True once the job's newest state has been shown. */
  isShown(jobId: string): Promise<boolean>;
  /** Prompt and run lines as typed (a terminal), or run every line in turn and wait for its jobs (a pipe). */
  interactive: boolean;
  color: boolean;
  jobTimeoutMs?: number;
}

export interface ShellResult {
  commands: number;
  failedCommands: number;
  failedJobs: number;
}

async function waitForJobs(options: ShellOptions, jobIds: string[]): Promise<JobState[]> {
  const deadline = Date.now() + (options.jobTimeoutMs ?? 10 * 60_000);
  const states: JobState[] = [];
  for (const jobId of jobIds) {
    for (;;) {
      const state = await options.readJob(jobId);
      if (state && terminalPhases.has(state.phase) && (await options.isShown(jobId))) {
        states.push(state);
        break;
      }
      if (Date.now() > deadline) {
        options.output.write(`  (stopped waiting for ${jobId}: it is still ${state?.phase ?? "unknown"})\n`);
        break;
      }
      await sleep(50);
    }
  }
  return states;
}

/**
 * The local shell adapter: a line typed here is a chat message from `user` in conversation `session`.
 * In a pipe, each line runs to completion before the next, so scripts read like a conversation.
 */
export async function runShell(options: ShellOptions): Promise<ShellResult> {
  const { output, user, handle, interactive, color } = options;
  const result: ShellResult = { commands: 0, failedCommands: 0, failedJobs: 0 };
  const finished: JobState[] = [];
  const lines = createInterface({
    input: options.input,
    terminal: interactive,
    crlfDelay: Number.POSITIVE_INFINITY,
  });
  const prompt = (): void => {
    if (interactive) output.write(color ? "\u001b[1mshipbot>\u001b[0m " : "shipbot> ");
  };
  prompt();
  for await (const raw of lines) {
    const text = raw.trim();
    if (text === "" || text.startsWith("#")) {
      prompt();
      continue;
    }
    if (interactive && (text === "exit" || text === "quit")) break;
    if (!interactive) output.write(`\n> ${text}\n`);
    result.commands++;
    const reply = await handle({
      id: randomUUID(),
      user,
      conversation: { platform: "shell", channel: options.session },
      text,
      receivedAt: Date.now(),
    });
    if (!reply.ok) result.failedCommands++;
    if (reply.card) output.write(`${renderCardText(reply.card, color)}\n`);
    if (!interactive && reply.jobIds.length > 0) {
      const states = await waitForJobs(options, reply.jobIds);
      finished.push(...states);
      result.failedJobs += reply.jobIds.length - states.filter((s) => s.phase === "succeeded").length;
    }
    prompt();
  }
  if (!interactive && finished.length > 0) {
    output.write("\nFinal state of every job:\n");
    for (const s of finished) output.write(`  ${s.jobId} · ${s.phase} · ${s.text}\n`);
  }
  return result;
}
