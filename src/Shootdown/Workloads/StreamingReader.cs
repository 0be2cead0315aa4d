using Shootdown.Hardware;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Observe;

namespace Shootdown.Workloads;

/// <summary>
/// One streaming reader (usemem): fault in the 16-page fault-around window, read its pages, move on.
/// <see cref="Finished"/> runs when it exits.
/// </summary>
public sealed class StreamingReader(int pid, string comm, MmStruct mm, Cpu cpu, Vma vma, long[] hot)
: SimTask(pid, comm, mm, cpu)
{
    private readonly int[] _stash = new int[LruFileMmapRead.FaultAroundPages];

    /// <summary>Called once when the reader has read its whole file.</summary>
    public Action? Finished { get; init; }
    private int _have;
    private int _need = -1;
    private long _pos;

    public override StepResult Step(Sim sim, Exec ex)
    {
        if (sim.Vmscan.StepDirectReclaim(ex, this))
        {
            return StepResult.Continue;
        }
        AddressSpace file = vma.File!;
        if (_pos >= file.SizePages)
        {
            Finished?.Invoke();
            // do_exit: the mapping is torn down with the process (costed as one switch away).
            ex.Sys += sim.Costs.ContextSwitchNs;
            return StepResult.Exit;
        }
        long from = _pos, to = Math.Min(_pos + LruFileMmapRead.FaultAroundPages, file.SizePages);
        if (_need < 0)
        {
            // The access to the first page of the window faults: filemap_fault + fault-around.
            sim.VmStat.Inc(VmEvent.pgfault);
            sim.Trace?.PageFault(ex.Now, ex.Cpu.Id, Comm, Pid, vma.VpnOf(from));
            sim.Series.Add(Series.Faults, ex.Now, 1);
            ex.Sys += sim.Costs.FaultEntryNs;
            _need = sim.Filemap.CountMissing(file, from, to);
        }
        if (_have < _need)
        {
            if (!sim.Vmscan.AllocPagesOrReclaim(ex, this, _need, _stash, ref _have))
            {
                return StepResult.Continue;
            }
        }
        ex.What = "fault+read";
        sim.Filemap.AddMissingPages(ex, file, from, to, _stash);
        sim.Filemap.MapPages(ex, vma, from, to, write: false);
        _have = 0;
        _need = -1;
        // User reads every word of each page; the first access of each walks the page table.
        Mmu mmu = sim.Mmu;
        MmStruct m = Mm!;
        for (long i = from; i < to; i++)
        {
            long vpn = vma.VpnOf(i);
            if (mmu.Touch(ex, m, vpn, write: false) == Mmu.Access.Fault)
            {
                // Reclaim took the page between map and access: read it again next step.
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
        _pos = to;
        return StepResult.Continue;
    }
}
