using Shootdown.Kernel.Sched;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// kswapd (mm/vmscan.c): one kernel thread per node, allowed on the node's CPUs. Woken by the
/// allocator's slow path (wakeup_kswapd); reclaims with balance_pgdat until the zone is above its
/// high watermark, then sleeps (kswapd_try_to_sleep).
/// </summary>
public sealed class KswapdTask : SimTask
{
    public KswapdTask(int pid, int node, Cpu cpu, int[] nodeCpus)
        : base(pid, $"kswapd{node}", null, cpu)
    {
        Node = node;
        AllowedCpus = nodeCpus;
    }

    public int Node { get; }

    protected internal override IEnumerable<Yield> Run(Sim sim)
    {
        Exec ex = sim.Exec;
        // kswapd is created asleep: 4.0's kswapd() goes to sleep through kswapd_try_to_sleep before
        // anything wakes it, so its first wake, like every later one, sets the pressure threshold.
        ex.Sys += sim.ZoneStats.SetNodeThreshold(Node, pressure: true, ex.Cpu.Id, ex.Now);
        while (true)
        {
            // kswapd_try_to_sleep: a balanced node lets kswapd sleep until wakeup_kswapd.
            if (sim.Vmscan.NodeBalanced(Node))
            {
                // prepare_kswapd_sleep: no task may stay throttled while kswapd sleeps.
                if (sim.Memory.PfmemallocWaitOf(Node).Count > 0)
                {
                    sim.Vmscan.WakePfmemallocWaiters(ex.Now, Node);
                }
                ex.What = "kswapd sleep";
                // kswapd_try_to_sleep: the node's zones get the normal vm_stat threshold back for
                // the sleep, and the pressure one when kswapd wakes (mm/vmstat.c, ZoneStats).
                ex.Sys += sim.ZoneStats.SetNodeThreshold(Node, pressure: false, ex.Cpu.Id, ex.Now);
                sim.Trace?.KswapdSleep(ex.Now, ex.Cpu.Id, Comm, Pid, Node);
                yield return Yield.Sleep;
                ex.What = "kswapd sleep";
                ex.Sys += sim.ZoneStats.SetNodeThreshold(Node, pressure: true, ex.Cpu.Id, ex.Now);
                continue;
            }
            sim.Trace?.KswapdWake(ex.Now, ex.Cpu.Id, Comm, Pid, Node);
            yield return Process.Call(sim.Vmscan.BalancePgdat(ex, this, Node));
            if (ex.Now == ex.Start)
            {
                // Nothing to isolate (every page is in a pagevec or isolated by others): give way.
                ex.Sys += sim.Costs.ContextSwitchNs;
            }
            yield return Yield.Resched;
        }
    }
}
