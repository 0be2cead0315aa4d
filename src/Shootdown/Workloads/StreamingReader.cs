using Shootdown.Hardware;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;

namespace Shootdown.Workloads;

/// <summary>
/// One streaming reader (usemem): read the mapped file word by word from start to end. The first
/// access to each fault-around window faults (handle_mm_fault maps the window); each page's first
/// access walks the page table. <see cref="Finished"/> runs when it has read the whole file, just
/// before it exits.
/// </summary>
public sealed class StreamingReader(int pid, string comm, MmStruct mm, Cpu cpu, Vma vma, long[] hot)
: SimTask(pid, comm, mm, cpu)
{
    /// <summary>Called once when the reader has read its whole file.</summary>
    public Action? Finished { get; init; }

    protected internal override IEnumerable<Yield> Run(Sim sim)
    {
        Exec ex = sim.Exec;
        long size = vma.File!.SizePages;
        long pos = 0;
        long started = ex.Now;
        while (pos < size)
        {
            ex.What = "fault+read";
            if (sim.Mmu.Touch(ex, vma.Mm, vma.VpnOf(pos), write: false) == Mmu.Access.Fault)
            {
                sim.Fault.HandleMmFault(ex, this, vma, pos, write: false, out IEnumerable<Yield>? wait);
                if (wait is not null)
                {
                    yield return Process.Call(wait);
                }
            }
            pos = ReadWindow(sim, ex, pos, Math.Min(pos + vma.FaultAroundPages, size));
            if (pos == size)
            {
                sim.ReaderDone(size, started, ex.Now); // usemem's clock stops at its last access
            }
            yield return Yield.Resched;
        }
        Finished?.Invoke();
    }

    /// <summary>
    /// The user reads every word of pages [from, to); the first access of each walks the page table.
    /// Returns where the reader got to: a page reclaim took between map and access is faulted again
    /// next step.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)] // a plain method's locals stay in registers
    private long ReadWindow(Sim sim, Exec ex, long from, long to)
    {
        Mmu mmu = sim.Mmu;
        MmStruct m = vma.Mm;
        long readNs = sim.Costs.UserReadPageNs;
        long i = from;
        for (; i < to; i++)
        {
            if (mmu.Touch(ex, m, vma.VpnOf(i), write: false) == Mmu.Access.Fault)
            {
                break;
            }
            ex.User += readNs;
        }
        foreach (long h in hot)
        {
            mmu.Touch(ex, m, h, write: false);
        }
        sim.PagesDone += i - from;
        return i;
    }
}
