from helcim_sandbox.cli import main

main()
