# A message of the day in the agent's own Puppet vardir
# (var/agents/<name>/puppet/var/sample/motd), and a notice in the run's report.
class sample::motd (
  String[1] $message = 'Managed by Baton',
) {
  $dir = "${settings::vardir}/sample"

  file { $dir:
    ensure => directory,
  }

  file { "${dir}/motd":
    ensure  => file,
    content => "${message}: ${trusted['certname']}, environment ${environment}\n",
  }

  notify { "sample::motd: ${trusted['certname']} has its motd in ${dir}": }
}
