using System.CommandLine;
using System.Globalization;
using Shootdown.Hardware;
using Shootdown.Reports;

namespace Shootdown.Cli;

/// <summary>`shootdown crosscheck`: the model against published figures outside the seed's comparison (README, "Cross-checks").</summary>
internal static class CrossCheckCli
{
    public static Command Build()
    {
        var seed = new Option<string>("--seed") { Description = "Seed of every run", DefaultValueFactory = _ => "1" };
        var jobs = new Option<string>("--jobs") { Description = "Runs at once on the host's cores (the result does not depend on it)", DefaultValueFactory = _ => Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture) };
        var format = new Option<string>("--format") { Description = "Output format: table, json or csv", DefaultValueFactory = _ => "table" };
        var repeat = new Option<string>("--repeat") { Description = "Seeds per run, seed..seed+N-1; each check's figure is its mean over them", DefaultValueFactory = _ => "1" };
        var cmd = new Command("crosscheck", "Set the model beside published measurements outside the seed's comparison (truncation timings, Linux 6.4's migration batching, a 4-socket lock profile, the series' v6 PFN list against its full flush and its SWAP_CLUSTER_MAX patch), which no constant was searched against");
        foreach (Option o in new Option[] { seed, repeat, jobs, format, ShootdownCli.ProgressOpt, ShootdownCli.CostOpt, ShootdownCli.CpuSpeedOpt, ShootdownCli.MemcgOpt })
        {
            cmd.Options.Add(o);
        }
        cmd.SetAction(pr =>
        {
            string f = pr.GetValue(format)!;
            if (f is not ("table" or "json" or "csv"))
            {
                throw new ConfigException($"unknown --format '{ParseArg.Clip(f)}'; allowed: table, json, csv");
            }
            ulong sd = ParseArg.Unsigned(pr.GetValue(seed)!, "--seed");
            int j = (int)ParseArg.Integer(pr.GetValue(jobs)!, "--jobs", 1, 1024);
            int seeds = (int)ParseArg.Integer(pr.GetValue(repeat)!, "--repeat", 1, 1000);
            if ((ulong)(seeds - 1) > ulong.MaxValue - sd)
            {
                throw new ConfigException($"--seed {sd} with --repeat {seeds} would run seeds past {ulong.MaxValue} (seeds must not wrap); lower --seed or --repeat");
            }
            bool? memcg = ShootdownCli.OnOff(pr, ShootdownCli.MemcgOpt);
            // Parse --cost and --cpu-speed once, against a machine's costs, so bad input fails before any run.
            _ = ShootdownCli.CostsFrom(pr, Hardware.MachineSpec.Resolve(CrossCheck.Runs[0].Machine).Costs);
            int total = CrossCheck.Runs.Count * seeds;
            CrossCheck result = ShootdownCli.WithProgress(f == "table" || pr.GetValue(ShootdownCli.ProgressOpt), $"{total} runs", total,
                progress => CrossCheck.Run(CrossCheck.All, CrossCheck.Runs, sd, j, c => ShootdownCli.CostsFrom(pr, c), progress, seeds, memcg));
            // The same --cost, --cpu-speed and --memcg apply to every run; a machine's own clock note is its business, not this run's.
            string diffs = string.Join("\n", result.Configs.Select(c => ShootdownCli.SetNote(c.Machine, c)).Append(memcg == false ? ShootdownCli.NoMemcgNote : "").Where(n => n.Length > 0).Distinct());
            Console.Out.Write(f switch
            {
                "json" => result.ToJsonNode().ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n",
                "csv" => result.ToCsv(),
                _ => (diffs.Length > 0 ? diffs + "\n\n" : "") + result.ToText(),
            });
            return result.AllWithin ? ShootdownCli.ExitOk : ShootdownCli.ExitOutOfTolerance;
        });
        return cmd;
    }
}
