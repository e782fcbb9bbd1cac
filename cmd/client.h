/*
 * client.h - the client subcommands of the holdfast executable:
 *
 *   holdfast call ADDRESS METHOD [ARGS-JSON] [--url U] [--token T]
 *                 [--key K] [--msgpack] [--timeout MS]
 *   holdfast tail ADDRESS [--since N] [--url U] [--token T] [--msgpack]
 *                 [--timeout MS]
 *
 * Both speak wire protocol v1 (DESIGN §5) over one WebSocket to /v1/ws,
 * with client/wsclient. argv[0] is the first argument after the
 * subcommand's name; argc counts from there. Each returns the process exit
 * status:
 *   0  success (tail: stopped by SIGINT or SIGTERM)
 *   1  the server answered with an error reply (printed on stderr as
 *      "error: <code>: <message>")
 *   2  usage error, cannot connect, handshake refused, or no reply in time
 *   3  tail: the connection ended after it was established
 * Results and events go to stdout, one JSON value per line; everything else
 * to stderr. Call from the main thread only (tail installs SIGINT/SIGTERM
 * handlers).
 */
#ifndef HF_CMD_CLIENT_H
#define HF_CMD_CLIENT_H

#include <stdio.h>

int hf_cmd_call(int argc, char **argv);
int hf_cmd_tail(int argc, char **argv);

/* Prints what call and tail do, their options and exit statuses - not the
 * "usage: holdfast call ..." lines, which the caller's usage text has. */
void hf_cmd_client_usage(FILE *out);

#endif
