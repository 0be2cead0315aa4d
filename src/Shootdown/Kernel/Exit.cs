using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;

namespace Shootdown.Kernel;

/// <summary>kernel/exit.c: do_exit as far as memory is concerned.</summary>
public sealed class Exit(Sim sim)
{
    /// <summary>
    /// do_exit: exit_mm — the task drops its mm (task->mm = NULL) and its CPU keeps the mm loaded
    /// lazily (enter_lazy_tlb) until it switches to another; mmput — the last user's exit runs
    /// exit_mmap. The final schedule() away costs a context switch.
    /// </summary>
    public void DoExit(Exec ex, SimTask task)
    {
        ex.Sys += sim.Costs.ContextSwitchNs;
        MmStruct? mm = task.Mm;
        if (mm is null)
        {
            return;
        }
        task.Mm = null;
        sim.Arch.EnterLazyTlb(ex.Cpu);
        if (--mm.Users == 0)
        {
            sim.Mmap.ExitMmap(ex, mm);
        }
    }
}
