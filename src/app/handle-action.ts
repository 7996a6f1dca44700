import { createCard } from "../core/card.ts";
import { ShipbotError } from "../core/errors.ts";
import type { ChatUser, Conversation } from "../core/model.ts";
import type { OpsQueue } from "../queue/ops-queue.ts";
import type { CommandHandler, CommandReply } from "./handle-command.ts";

/** A button click, normalised by an adapter. The value is untrusted: it is re-checked like typed text. */
export interface ChatAction {
  /** The platform's id for this click (trigger id, invoke id), for logs. */
  id: string;
  user: ChatUser;
  conversation: Conversation;
  action: string;
  value: string;
  receivedAt: number;
}

const jobIdPattern = /^j[0-9a-z]{6,20}$/;

/**
 * Buttons are shortcuts for commands: a click becomes the command it stands for and goes through the
 * same parsing and permission checks as if the person had typed it.
 */
export function createActionHandler(handle: CommandHandler, ops: Pick<OpsQueue, "find">) {
  return async function handleAction(action: ChatAction): Promise<CommandReply> {
    const refuse = (message: string): CommandReply => {
      const error = new ShipbotError("usage", message);
      return { ok: false, card: createCard("failure", message), jobIds: [], error, traceId: "" };
    };
    if (!jobIdPattern.test(action.value))
      return refuse("that button no longer refers to a job shipbot knows");
    // The same button on the same card means the same operation, whoever clicks and however often:
    // the command id derives from the button, so double clicks and parallel clicks make one job.
    const base = {
      id: `button-${action.action}-${action.value}`,
      user: action.user,
      conversation: action.conversation,
      receivedAt: action.receivedAt,
    };
    switch (action.action) {
      case "cancel":
        return handle({ ...base, text: `cancel ${action.value}` });
      case "rollback": {
        const data = await ops.find(action.value);
        if (!data) return refuse(`job ${action.value} is no longer known; use /rollback <service> <env>`);
        return handle({ ...base, text: `rollback ${data.service} ${data.env}` });
      }
      default:
        return refuse(`unknown action \`${action.action.slice(0, 40)}\``);
    }
  };
}
