from keypointer.cli import main

main()
