using Shootdown.Hardware;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Observe;

namespace Shootdown.Workloads;

/// <summary>
/// vm-scalability case-lru-file-mmap-read: one reader per CPU, each with its own sparse file of
/// 10 x RAM / nr_cpu bytes (created with truncate, never written), mapped MAP_SHARED, PROT_READ and
/// read word by word from start to end. Each read fault maps the 16-page fault-around window.
/// </summary>
public sealed class LruFileMmapRead : Workload
{
    /// <summary>Pages mapped per read fault (Linux 4.0 fault_around_bytes = 64 KiB).</summary>
    public const int FaultAroundPages = 16;

    /// <summary>Text, stack and data pages each reader touches all the time (they refill after a full flush).</summary>
    public const int HotPages = 8;

    /// <summary>Where each reader's file mapping starts (virtual page number).</summary>
    public const long MapBase = 1L << 20;

    public override string Name => "lru-file-mmap-read";

    public override string Summary => "vm-scalability lru-file-mmap-read: one reader per CPU streams its own sparse 10xRAM/nr_cpu file through a shared read-only mapping";

    public override long Setup(Sim sim)
    {
        int nrCpus = sim.Cpus.Length;
        long ramPages = sim.Memory.NrFrames;
        long filePages = 10 * ramPages / nrCpus;
        if (filePages < FaultAroundPages)
        {
            throw new ConfigException($"memory too small for {Name}: each reader's file would be {filePages} pages");
        }
        long total = 0;
        for (int c = 0; c < nrCpus; c++)
        {
            MmStruct mm = sim.CreateMm();
            AddressSpace file = sim.CreateFile($"lru-file-{c}", filePages);
            var vma = new Vma(mm, MapBase, filePages, file, 0, writable: false, shared: true);
            mm.Vmas.Add(vma);
            file.IMmap.Add(vma);
            long[] hot = sim.MapHotPages(mm, sim.Cpus[c].Node, HotPages);
            var reader = new MmapReader(sim.NextPid(), $"usemem-{c}", mm, sim.Cpus[c], vma, hot);
            sim.AddUserTask(reader, startAt: sim.Rng.Next(20_000));
            total += filePages;
        }
        return total;
    }

    /// <summary>One reader: fault in a window, read its pages, move on.</summary>
    private sealed class MmapReader(int pid, string comm, MmStruct mm, Cpu cpu, Vma vma, long[] hot)
        : SimTask(pid, comm, mm, cpu)
    {
        private readonly int[] _stash = new int[FaultAroundPages];
        private int _have;
        private int _need = -1;
        private long _pos;
        private bool _reclaiming;
        private bool _afterReclaim;
        private int _fruitlessReclaims;

        public override StepResult Step(Sim sim, Exec ex)
        {
            if (_reclaiming)
            {
                if (sim.Vmscan.ReclaimStep(ex, this))
                {
                    sim.Trace?.DirectReclaimEnd(ex.Now, ex.Cpu.Id, Comm, Pid, Sc!.NrReclaimed);
                    _reclaiming = false;
                    _afterReclaim = true;
                    if (Sc!.NrReclaimed == 0 && ++_fruitlessReclaims > 1000)
                    {
                        throw new SimulationException($"out of memory: {Comm} cannot reclaim any page (node {HomeCpu.Node})");
                    }
                    if (Sc.NrReclaimed > 0)
                    {
                        _fruitlessReclaims = 0;
                    }
                }
                return StepResult.Continue;
            }
            AddressSpace file = vma.File!;
            if (_pos >= file.SizePages)
            {
                // do_exit: the mapping is torn down with the process (costed as one switch away).
                ex.Sys += sim.Costs.ContextSwitchNs;
                return StepResult.Exit;
            }
            long from = _pos, to = Math.Min(_pos + FaultAroundPages, file.SizePages);
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
                if (!sim.PageAlloc.AllocPages(ex, _need, _stash, ref _have, _afterReclaim))
                {
                    _afterReclaim = false;
                    sim.VmStat.Inc(VmEvent.allocstall);
                    sim.Vmscan.StartDirect(this, HomeCpu.Node, ex);
                    _reclaiming = true;
                    return StepResult.Continue;
                }
                _afterReclaim = false;
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
}
