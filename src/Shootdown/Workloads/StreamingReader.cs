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
        Mmu mmu = sim.Mmu;
        MmStruct m = vma.Mm;
        AddressSpace file = vma.File!;
        long pos = 0;
        while (pos < file.SizePages)
        {
            ex.What = "fault+read";
            long from = pos;
            long to = Math.Min(pos + vma.FaultAroundPages, file.SizePages);
            if (mmu.Touch(ex, m, vma.VpnOf(from), write: false) == Mmu.Access.Fault)
            {
                sim.Fault.HandleMmFault(ex, this, vma, from, write: false, out IEnumerable<Yield>? wait);
                if (wait is not null)
                {
                    foreach (Yield y in wait)
                    {
                        yield return y;
                    }
                }
            }
            // The user reads every word of each page; the first access of each walks the page table.
            for (long i = from; i < to; i++)
            {
                if (mmu.Touch(ex, m, vma.VpnOf(i), write: false) == Mmu.Access.Fault)
                {
                    // Reclaim took the page between map and access: fault it again next step.
                    to = i;
                    break;
                }
                ex.User += sim.Costs.UserReadPageNs;
            }
            foreach (long h in hot)
            {
                mmu.Touch(ex, m, h, write: false);
            }
            sim.PagesDone += to - from;
            pos = to;
            yield return Yield.Resched;
        }
        Finished?.Invoke();
    }
}
