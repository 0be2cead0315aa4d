using Shootdown.Cli;

return await ShootdownCli.RunAsync(args).ConfigureAwait(false);
