/* SPDX-License-Identifier: MIT */
/* choreo trace: placeholder while it is written. */
#include "cli.h"

int cli_trace(cli_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_fail(ctx, "not implemented yet");
}
