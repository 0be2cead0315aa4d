using Shootdown.Hardware;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Observe;

namespace Shootdown.Workloads;

/// <summary>
/// vm-scalability case-lru-file-mmap-read: one reader per CPU, each with its own sparse file of
/// 10 x RAM / nr_cpu bytes (created with truncate, never written; on ext3 over a loop device in
/// vm-scalability's hw_vars, so with the block device's readahead), mapped MAP_SHARED, PROT_READ and
/// read word by word from start to end. A read fault maps the 16-page fault-around window's cached
/// pages, and filemap_fault reads around a miss and one window ahead (<see cref="Fault"/>).
/// When every reader has exited, the script removes the files (<see cref="RemoveFiles"/>): the
/// test's elapsed time ends when that rm has dropped their page cache.
/// <para>
/// The readers are not bound to CPUs (the case script starts them with no taskset): each starts on
/// its own CPU and the scheduler's balance may move it within its node — every node holds as many
/// readers as CPUs plus its kswapd, so the NUMA level finds no imbalance between nodes (a 13-to-12
/// ratio is under its 125% threshold) and the model does not move readers across nodes.
/// </para>
/// </summary>
public sealed class LruFileMmapRead : Workload
{
    /// <summary>Pages mapped per read fault (Linux 4.0 fault_around_bytes = 64 KiB).</summary>
    public const int FaultAroundPages = 16;

    /// <summary>Text, stack and data pages each reader touches all the time (they refill after a full flush).</summary>
    public const int HotPages = 8;

    /// <summary>Where each reader's file mapping starts (virtual page number).</summary>
    public const long MapBase = MmStruct.MmapBase;

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
        var files = new AddressSpace[nrCpus];
        var rm = new RemoveFiles(sim.NextPid(), sim.Cpus[0], files) { AllowedCpus = Enumerable.Range(0, nrCpus).ToArray() };
        for (int c = 0; c < nrCpus; c++)
        {
            files[c] = sim.CreateFile($"lru-file-{c}", filePages);
            sim.AddUserTask(ReaderOf(sim, files[c], $"usemem-{c}", sim.Cpus[c], rm, sim.NodeCpus[sim.Cpus[c].Node]), startAt: sim.Rng.Next(20_000));
            total += filePages;
        }
        sim.AddSleepingUserTask(rm);
        return total;
    }

    /// <summary>
    /// A usemem --readonly of <paramref name="file"/>: its own process, the whole file mapped
    /// MAP_SHARED and read once, fault-around's window per fault; its exit counts towards the
    /// script's wait before <paramref name="rm"/>. It starts on <paramref name="cpu"/> and the
    /// scheduler may move it among <paramref name="allowed"/> (default: that CPU only).
    /// </summary>
    internal static StreamingReader ReaderOf(Sim sim, AddressSpace file, string comm, Cpu cpu, RemoveFiles rm, int[]? allowed = null)
    {
        MmStruct mm = sim.CreateMm();
        var vma = new Vma(mm, MapBase, file.SizePages, file, 0, writable: false, shared: true) { FaultAroundPages = FaultAroundPages, Ra = new FileRaState() };
        mm.Vmas.Add(vma);
        file.IMmap.Add(vma);
        long[] hot = sim.MapHotPages(mm, cpu.Node, HotPages);
        return new StreamingReader(sim.NextPid(), comm, mm, cpu, vma, hot) { Reaped = t => rm.ChildExited(sim, t), AllowedCpus = allowed ?? [cpu.Id] };
    }
}
