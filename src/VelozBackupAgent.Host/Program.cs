using VelozBackupAgent.Host.Cli;

return await VelozCli.RunAsync(args);
