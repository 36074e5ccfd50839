# Included by the Snakefile. Works around a bug of snakemake-executor-plugin-slurm (2.8.0, the
# newest at the time of writing): a job cancelled with `scancel` shows in sacct as
# "CANCELLED by <uid>", which the plugin does not recognise as a failure, so Snakemake waits for
# that job forever instead of retrying it. Here every "<STATE> by <uid>" the plugin reads becomes
# "<STATE>", so a cancelled training job is retried and resumes from its checkpoint.
# Without the plugin (local runs), or once the plugin no longer has the hook, this does nothing.

import functools as _functools


def _patch_slurm_cancelled_state() -> None:
    try:
        import snakemake_executor_plugin_slurm as plugin
    except ImportError:
        return
    query = getattr(plugin, "query_job_status", None)
    if query is None or getattr(query, "sdnet_strips_requester", False):
        return

    @_functools.wraps(query)
    async def query_job_status(command, logger):
        states, seconds = await query(command, logger)
        if states is not None:
            states = {job: state.split(" by ", 1)[0] for job, state in states.items()}
        return states, seconds

    query_job_status.sdnet_strips_requester = True
    plugin.query_job_status = query_job_status


_patch_slurm_cancelled_state()
