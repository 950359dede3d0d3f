/**
 * Netlink errors, all typed:
 * - NetlinkError: the kernel answered with an errno (NLMSG_ERROR, or a negative NLMSG_DONE payload), with the
 *   operation and the extended-ack text when the kernel gave one. A SysError, so `err.errno` / `err.code` work.
 * - NetlinkDecodeError: bytes that are not valid netlink ('eof' = the data ends too early, 'corrupt' = a length
 *   or field that cannot be right).
 * - NetlinkProtocolError: valid bytes that break the conversation (truncated datagram, wrong sequence number
 *   or port, a message type that is not expected here).
 */
import { EXIT, TdError } from '../errors.js';
import { SysError } from '../sys/libc.js';

export interface ExtAck {
  /** NLMSGERR_ATTR_MSG: the kernel's error string */
  msg?: string;
  /** NLMSGERR_ATTR_OFFS: byte offset of the offending attribute in the request */
  offset?: number;
  /** NLMSGERR_ATTR_MISS_TYPE: the attribute type that was missing */
  missingType?: number;
  /** NLMSGERR_ATTR_MISS_NEST: offset of the nest the missing attribute belongs in */
  missingNest?: number;
  /** NLMSGERR_ATTR_COOKIE */
  cookie?: Buffer;
  /** NLMSGERR_ATTR_POLICY and any attribute this code does not know, kept as they came */
  other: { type: number; payload: Buffer }[];
}

export class NetlinkError extends SysError {
  /** what was asked, e.g. "TASKDIAG get", "nlctrl getfamily TASKDIAG" */
  readonly operation: string;
  readonly extAck: ExtAck | undefined;
  constructor(operation: string, errno: number, extAck?: ExtAck) {
    const detail = extAck?.msg !== undefined && extAck.msg !== ''
      ? extAck.msg + (extAck.offset !== undefined ? ` (at request byte ${extAck.offset})` : '')
      : extAck?.offset !== undefined ? `bad attribute at request byte ${extAck.offset}` : undefined;
    super(operation, errno, undefined, detail);
    this.operation = operation;
    this.extAck = extAck;
  }
  /** The kernel's extended-ack message, if any. */
  get extAckMessage(): string | undefined {
    return this.extAck?.msg;
  }
}

export class NetlinkDecodeError extends TdError {
  readonly reason: 'eof' | 'corrupt';
  /** byte offset inside the buffer being decoded */
  readonly offset: number;
  /** what was being decoded: 'nlmsghdr', 'nlattr', 'genlmsghdr', 'task_diag_msg', ... */
  readonly what: string;
  constructor(reason: 'eof' | 'corrupt', what: string, offset: number, detail: string) {
    super('internal', EXIT.INTERNAL,
      `netlink ${what}: ${reason === 'eof' ? 'premature end of data' : 'corrupt data'} at offset ${offset}: ${detail}`);
    this.reason = reason;
    this.offset = offset;
    this.what = what;
  }
}

export type ProtocolFault = 'truncated' | 'seq' | 'port' | 'unexpected' | 'overrun' | 'closed';

export class NetlinkProtocolError extends TdError {
  readonly fault: ProtocolFault;
  readonly operation: string;
  constructor(fault: ProtocolFault, operation: string, detail: string) {
    super('internal', EXIT.INTERNAL, `netlink ${operation}: ${detail}`);
    this.fault = fault;
    this.operation = operation;
  }
}
