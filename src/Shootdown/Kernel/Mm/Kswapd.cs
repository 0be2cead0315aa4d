using Shootdown.Kernel.Sched;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// kswapd (mm/vmscan.c): one kernel thread per node, bound to the node's CPUs (the simulator puts
/// it on the node's first CPU, where it time-shares with that CPU's user task). Woken by the
/// allocator's slow path; reclaims with balance_pgdat until the zone is above its high watermark,
/// then sleeps.
/// </summary>
public sealed class KswapdTask : SimTask
{
    private readonly int _node;

    public KswapdTask(int pid, int node, Cpu cpu)
        : base(pid, $"kswapd{node}", null, cpu)
    {
        _node = node;
        IsKswapd = true;
    }

    public override StepResult Step(Sim sim, Exec ex)
    {
        Zone z = sim.Memory.Zones[_node];
        if (Sc is null || Sc.Finished)
        {
            if (z.Balanced)
            {
                ex.Sys += sim.Costs.LockAcquireNs;
                sim.Trace?.KswapdSleep(ex.Now, ex.Cpu.Id, Comm, Pid, _node);
                return StepResult.Sleep;
            }
            sim.Vmscan.StartKswapd(this, _node, ex);
        }
        bool done = sim.Vmscan.ReclaimStep(ex, this);
        if (ex.Sys == 0)
        {
            // Nothing to isolate (every page is in a pagevec or isolated by others): give way.
            ex.Sys += sim.Costs.ContextSwitchNs;
        }
        if (done && z.Balanced)
        {
            sim.Trace?.KswapdSleep(ex.Now, ex.Cpu.Id, Comm, Pid, _node);
            return StepResult.Sleep;
        }
        return StepResult.Continue;
    }
}
