using BenchmarkDotNet.Attributes;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;

namespace Shootdown.Benchmarks;

/// <summary>
/// The per-page kernel paths on a small machine (2 nodes x 4 CPUs, 256 MiB) whose workload has not
/// started: the state each benchmark consumes is rebuilt before every iteration, and every figure
/// is per page.
/// </summary>
[MemoryDiagnoser]
public class KernelPathBenchmarks
{
    private const int Pages = 4096;

    private Sim _sim = null!;
    private Exec _ex = null!;
    private int[] _frames = null!;
    private SimTask _task = null!;

    private static Sim NewSim(string policy) =>
        new(RunConfig.Create(machine: "small-2node", scaleDivisor: 16, policy: policy));

    private Exec ExecOn(int cpu)
    {
        var ex = new Exec(_sim.Costs, _sim.Lines);
        ex.Reset(_sim.Cpus[cpu], _sim.UserTasks[cpu], 0, 0);
        return ex;
    }

    /// <summary>Maps <see cref="Pages"/> file pages into an mm that CPU 5 (other node) runs; puts them on node 0's LRU.</summary>
    private void MapPages(bool referenced)
    {
        MmStruct mm = _sim.CreateMm();
        _sim.Cpus[5].ActiveMm = mm.Id;
        mm.CpuMask.Set(5);
        AddressSpace file = _sim.CreateFile("bench", Pages);
        var vma = new Vma(mm, 0x1000, Pages, file, 0, writable: false, shared: true);
        mm.Vmas.Add(vma);
        file.IMmap.Add(vma);
        Zone z = _sim.Memory.Zones[0];
        _frames = new int[Pages];
        for (int i = 0; i < Pages; i++)
        {
            int f = z.AllocBootPage();
            _frames[i] = f;
            ref Page p = ref _sim.Memory.Pages[f];
            p.Flags = PageFlags.Uptodate | (referenced ? PageFlags.Referenced : 0);
            p.Mapping = file.Id;
            p.Index = i;
            p.MapCount = 1;
            file.PageCache.Set(i, (uint)(f + 1));
            mm.PageTable.Set(vma.VpnOf(i), Pte.Make(f, Pte.Present));
            _sim.Memory.LruAddHead(z, f, active: false);
        }
    }

    /// <summary>Starts the next step where the last one ended, as the event loop would.</summary>
    private void NextStep()
    {
        long t = _ex.Now;
        _ex.Reset(_ex.Cpu, _ex.Task, t, t);
    }

    [IterationSetup(Target = nameof(UnmapAndFlushVanilla))]
    public void SetupUnmapVanilla()
    {
        _sim = NewSim("vanilla");
        MapPages(referenced: false);
        _ex = ExecOn(0);
    }

    [IterationSetup(Target = nameof(UnmapAndDeferLinux43))]
    public void SetupUnmap43()
    {
        _sim = NewSim("linux-4.3");
        MapPages(referenced: false);
        _ex = ExecOn(0);
    }

    /// <summary>try_to_unmap of one page whose mm runs on another node: PTE clear + one IPI round.</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    [InvocationCount(1)]
    public long UnmapAndFlushVanilla()
    {
        foreach (int f in _frames)
        {
            NextStep();
            _sim.Rmap.TryToUnmap(_ex, f, batchFlush: true);
        }
        return _ex.Sys;
    }

    /// <summary>try_to_unmap with 4.3's deferral: PTE clear + cpumask OR, flushed once per 32 pages.</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    [InvocationCount(1)]
    public long UnmapAndDeferLinux43()
    {
        int n = 0;
        foreach (int f in _frames)
        {
            NextStep();
            _sim.Rmap.TryToUnmap(_ex, f, batchFlush: true);
            if (++n % 32 == 0)
            {
                _sim.Policy.TryToUnmapFlush(_ex); // the end of shrink_page_list
            }
        }
        return _ex.Sys;
    }

    [IterationSetup(Target = nameof(ShrinkBatches))]
    public void SetupShrink()
    {
        _sim = NewSim("vanilla");
        MapPages(referenced: true); // PG_referenced, PTE old: reclaimed on first sight
        _task = _sim.UserTasks[0];
        _ex = ExecOn(0);
    }

    /// <summary>Direct reclaim steps (isolate, shrink_page_list, finish) over pages ready to reclaim.</summary>
    [Benchmark(OperationsPerInvoke = Pages)]
    [InvocationCount(1)]
    public long ShrinkBatches()
    {
        long reclaimed = 0;
        while (reclaimed < Pages - 64)
        {
            NextStep();
            using var reclaim = new ProcessRunner(_sim.Vmscan.TryToFreePages(_ex, _task, 0));
            while (reclaim.MoveNext())
            {
                NextStep();
            }
            reclaimed += _task.Sc!.NrReclaimed;
        }
        return reclaimed;
    }

    [IterationSetup(Target = nameof(ReadFaults))]
    public void SetupFaults()
    {
        _sim = NewSim("vanilla");
        _task = _sim.UserTasks[0];
        _ex = _sim.Exec; // the reader's process charges the simulation's step accumulator
        _ex.Reset(_sim.Cpus[0], _task, 0, 0);
        _body = new ProcessRunner(_task.Run(_sim));
    }

    private IEnumerator<Yield> _body = null!;

    /// <summary>The reader's step: one read fault (16 pages allocated, zeroed, added, mapped) and the reads.</summary>
    [Benchmark(OperationsPerInvoke = 256 * 16)]
    [InvocationCount(1)]
    public long ReadFaults()
    {
        for (int i = 0; i < 256; i++)
        {
            NextStep();
            _body.MoveNext();
        }
        return _sim.PagesDone;
    }
}
