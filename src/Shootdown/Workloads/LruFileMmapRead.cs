using Shootdown.Hardware;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Observe;

namespace Shootdown.Workloads;

/// <summary>
/// vm-scalability case-lru-file-mmap-read: one reader per CPU, each with its own sparse file of
/// 10 x RAM / nr_cpu bytes (created with truncate, never written), mapped MAP_SHARED, PROT_READ and
/// read word by word from start to end. Each read fault maps the 16-page fault-around window.
/// When every reader has exited, the script removes the files (<see cref="RemoveFiles"/>): the
/// test's elapsed time ends when that rm has dropped their page cache.
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
        int running = nrCpus;
        for (int c = 0; c < nrCpus; c++)
        {
            MmStruct mm = sim.CreateMm();
            AddressSpace file = sim.CreateFile($"lru-file-{c}", filePages);
            files[c] = file;
            var vma = new Vma(mm, MapBase, filePages, file, 0, writable: false, shared: true) { FaultAroundPages = FaultAroundPages };
            mm.Vmas.Add(vma);
            file.IMmap.Add(vma);
            long[] hot = sim.MapHotPages(mm, sim.Cpus[c].Node, HotPages);
            // The case script's wait returns when the last reader has exited; then it runs rm.
            var reader = new StreamingReader(sim.NextPid(), $"usemem-{c}", mm, sim.Cpus[c], vma, hot)
            {
                Reaped = t =>
                {
                    if (--running == 0)
                    {
                        sim.Sched.Wake(rm, t);
                    }
                },
            };
            sim.AddUserTask(reader, startAt: sim.Rng.Next(20_000));
            total += filePages;
        }
        sim.AddSleepingUserTask(rm);
        return total;
    }
}
